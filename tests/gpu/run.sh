#!/usr/bin/env bash
# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Real-GPU kit: run ON a machine with an NVIDIA GPU (Ubuntu 24.04, driver 580, Python 3.12, no Docker, no internet).
#   OUT=/some/folder tests/gpu/run.sh
# 1. makes a venv with ansible-core + nvidia-ml-py from tests/gpu/wheels (tests/gpu/fetch-wheels.sh, run elsewhere);
# 2. records the raw nvidia-smi outputs and NVML answers into $OUT/nvidia-smi/ (unit-test fixture names);
# 3. runs sparkfleet.trtllm.gpu_info through NVML and through nvidia-smi ($OUT/gpu_info-*.json);
# 4. runs `ansible-playbook -c local playbooks/preflight.yml` (preflight_fail_on=never; Docker is absent there, so the
#    docker check fails) with its report in $OUT/reports and its output in $OUT/preflight-play.txt;
# 5. compare.py checks gpu_info == nvidia-smi (name, uuid, driver, memory, compute capability) and the GPU checks.
# Exit status: 0 when everything matched.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
: "${OUT:?set OUT to the folder that receives the results}"
mkdir -p "$OUT/nvidia-smi"
py=${PYTHON:-/opt/torch/.venv/bin/python}
[ -x "$py" ] || py=$(command -v python3)
wheels=${WHEELS_DIR:-$here/wheels}
venv=${KIT_VENV:-/tmp/sparkfleet-gpu-kit-venv}
model=${KIT_MODEL:-nvidia/Qwen3-8B-FP8}
smi=${NVIDIA_SMI:-nvidia-smi}
log() { echo "[gpu-kit] $*" | tee -a "$OUT/kit.log"; }

log "python: $py ($("$py" -V 2>&1)); wheels: $wheels; model: $model"
if [ ! -x "$venv/bin/ansible-playbook" ]; then
  "$py" -m venv "$venv" || { log "cannot create a venv with $py"; exit 2; }
  "$venv/bin/python" -m pip install -q --no-index --find-links "$wheels" ansible-core nvidia-ml-py \
    >>"$OUT/kit.log" 2>&1 || { log "pip install from $wheels failed (run tests/gpu/fetch-wheels.sh first)"; exit 2; }
fi
"$venv/bin/ansible" --version | head -1 | tee -a "$OUT/kit.log"

log "recording raw nvidia-smi outputs"
fields=index,name,uuid,pci.bus_id,compute_cap,driver_version,memory.total,memory.used,memory.free,persistence_mode,ecc.mode.current,mig.mode.current
d=$OUT/nvidia-smi
"$smi" --query-gpu=$fields --format=csv,noheader,nounits > "$d/query-gpu.csv" 2>&1; echo "query-gpu rc=$?" > "$d/rc.txt"
"$smi" --query-gpu=$fields --format=csv > "$d/query-gpu-header.csv" 2>&1
"$smi" -q -x > "$d/q-x.xml" 2>&1; echo "q-x rc=$?" >> "$d/rc.txt"
"$smi" -L > "$d/L.txt" 2>&1; echo "L rc=$?" >> "$d/rc.txt"
"$smi" > "$d/plain.txt" 2>&1; echo "plain rc=$?" >> "$d/rc.txt"
"$smi" --query-compute-apps=pid,process_name,used_memory --format=csv,noheader,nounits > "$d/query-compute-apps.csv" 2>&1
"$smi" --version > "$d/version.txt" 2>&1
cp /proc/meminfo "$d/meminfo.txt"; cp /etc/os-release "$d/os-release.txt" 2>/dev/null
"$venv/bin/python" "$here/capture_nvml.py" > "$d/nvml.json" 2>&1; echo "nvml rc=$?" >> "$d/rc.txt"

export ANSIBLE_CONFIG=$here/ansible.cfg ANSIBLE_NOCOLOR=1 ANSIBLE_DEPRECATION_WARNINGS=False ANSIBLE_LOCAL_TEMP=${TMPDIR:-/tmp}/sparkfleet-kit-ansible
cd "$root" || exit 2
become=true; [ "$(id -u)" = 0 ] || become=false
for source in nvml nvidia_smi; do
  log "gpu_info source=$source"
  "$venv/bin/ansible" localhost -c local -i localhost, -o -e ansible_python_interpreter="$venv/bin/python" \
    -m sparkfleet.trtllm.gpu_info -a "source=$source" > "$OUT/gpu_info-$source.json" 2>&1
done

log "preflight play"
start=$(date +%s.%N)
"$venv/bin/ansible-playbook" -c local -i localhost, playbooks/preflight.yml \
  -e sparkfleet_target=localhost -e ansible_python_interpreter="$venv/bin/python" -e ansible_become=$become \
  -e sparkfleet_model="$model" -e sparkfleet_offline=true -e preflight_fail_on=never \
  -e sparkfleet_hf_home="$OUT/hf" -e preflight_disk_margin_gb=1 -e sparkfleet_llm_port=18355 \
  -e preflight_report_dir="$OUT/reports" > "$OUT/preflight-play.txt" 2>&1
play_rc=$?
end=$(date +%s.%N)
log "preflight play rc=$play_rc in $(echo "$end - $start" | bc 2>/dev/null || echo "?") s"
tail -30 "$OUT/preflight-play.txt"

"$venv/bin/python" "$here/compare.py" "$OUT"
cmp_rc=$?
{ echo "host: $(hostname)"; echo "date: $(date -u +%FT%TZ)"; head -1 "$d/L.txt"; grep PRETTY "$d/os-release.txt"; \
  echo "play rc: $play_rc; compare rc: $cmp_rc"; } > "$OUT/RUN-INFO.txt"
[ $play_rc -eq 0 ] && [ $cmp_rc -eq 0 ]
