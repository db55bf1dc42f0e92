# Copyright: Contributors to the sparkfleet.trtllm project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
name: model_spec
short_description: Resolve models against the DGX Spark support matrix
version_added: 0.1.0
author:
  - sparkfleet contributors (!UNKNOWN)
description:
  - Returns, for each model given, its row of the collection's model support matrix (the 20 models of NVIDIA's
    DGX Spark TensorRT-LLM guide) merged with the caller's overrides.
  - A model outside the matrix is accepted when its kind, download size and memory need are given
    (O(spec) for string terms, or the keys of a dict term); otherwise the lookup fails with a message naming the variable.
  - With no terms and O(all=true) it returns the whole matrix as a list.
  - Sizes are approximate, in decimal GB; C(memory_gb) is the need per node.
options:
  _terms:
    description:
      - Hugging Face model handles (C(org/name)), or dicts with a C(model) key plus overrides
        (C(kind), C(quantization), C(nodes), C(download_gb), C(memory_gb), C(name), C(serve)).
    type: list
    elements: raw
  spec:
    description: Overrides applied to every string term (for a model outside the matrix, at least C(kind), C(download_gb), C(memory_gb)).
    type: dict
    default: {}
  variable:
    description: Variable name used in error messages.
    type: str
    default: sparkfleet_model
  all:
    description: Return every row of the matrix (terms are then ignored).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Show the memory need of the chosen model
  ansible.builtin.debug:
    msg: "{{ lookup('sparkfleet.trtllm.model_spec', sparkfleet_model).memory_gb }} GB"

- name: Resolve a model that is not in the matrix
  ansible.builtin.set_fact:
    my_model: "{{ lookup('sparkfleet.trtllm.model_spec', 'acme/tiny-llm', spec={'kind': 'llm', 'download_gb': 2, 'memory_gb': 4}) }}"

- name: List every model of the matrix
  ansible.builtin.debug:
    msg: "{{ query('sparkfleet.trtllm.model_spec', all=true) | map(attribute='model') | list }}"
"""

RETURN = r"""
_raw:
  description: One resolved model description per term.
  type: list
  elements: dict
  contains:
    model:
      description: Hugging Face handle.
      type: str
    name:
      description: Display name.
      type: str
    quantization:
      description: V(MXFP4), V(FP8), V(NVFP4) (or V(BF16)/V(FP16)/null for models outside the matrix).
      type: str
    kind:
      description: V(llm) or V(vlm).
      type: str
    nodes:
      description: Number of Sparks the model needs.
      type: int
    download_gb:
      description: Approximate download size in GB.
      type: float
    memory_gb:
      description: Approximate memory need per node in GB.
      type: float
    in_matrix:
      description: Whether the model is a row of the support matrix.
      type: bool
    serve:
      description: Model-specific serving settings (C(extra_llm_api_options), C(env), C(args), C(quickstart_args), C(tiktoken_files)).
      type: dict
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible_collections.sparkfleet.trtllm.plugins.module_utils._model_matrix import MODELS, ModelMatrixError, resolve_model


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        if self.get_option("all"):
            return [resolve_model(handle, None, "model matrix") for handle in MODELS]
        spec = self.get_option("spec") or {}
        variable = self.get_option("variable")
        results = []
        flat = []
        for term in terms:
            flat.extend(term if isinstance(term, (list, tuple)) else [term])
        try:
            for term in flat:
                if isinstance(term, dict):
                    overrides = dict(term)
                    handle = overrides.pop("model", None)
                    results.append(resolve_model(handle, overrides, variable))
                else:
                    results.append(resolve_model(term, spec, variable))
        except ModelMatrixError as exc:
            raise AnsibleLookupError(str(exc))
        return results
