#!/usr/bin/env bash
# Prove the collection ships: build the tarball, install it into an empty collections path
# (no checkout link in sight), and check that its playbooks resolve as sparkfleet.trtllm.<name>.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$root/.venv}
work=$(mktemp -d /tmp/sparkfleet-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$root"
"$venv/bin/ansible-galaxy" collection build --force --output-path "$work/dist" . >/dev/null
tarball=$(ls "$work"/dist/sparkfleet-trtllm-*.tar.gz)
echo "built $(basename "$tarball") ($(du -k "$tarball" | cut -f1) KiB)"
# Nothing from the lab or the checkout link may ship.
if tar tzf "$tarball" | grep -E '^(collections|lab/\.state|lab/\.build|\.venv|reports)/'; then
  echo "tarball contains files that must not ship (see above)" >&2; exit 1
fi
# Away from the checkout's ansible.cfg, which would resolve sparkfleet.trtllm to the checkout itself.
cd "$work"
printf "[defaults]\n" > "$work/ansible.cfg"; export ANSIBLE_CONFIG="$work/ansible.cfg"
# The collections the ansible package ships (community.docker & co.), plus the freshly installed one.
bundled=$("$venv/bin/python" -c 'import ansible_collections, os; print(os.path.dirname(list(ansible_collections.__path__)[0]))')
export ANSIBLE_COLLECTIONS_PATH="$work/cols:$bundled"
"$venv/bin/ansible-galaxy" collection install --force --offline --no-deps -p "$work/cols" "$tarball" 2>&1 | grep -v 'is not part of the configured' >/dev/null
for path in "$work"/cols/ansible_collections/sparkfleet/trtllm/playbooks/*.yml; do
  pb=$(basename "$path" .yml)
  "$venv/bin/ansible-playbook" -i localhost, "sparkfleet.trtllm.$pb" --syntax-check >/dev/null
  echo "sparkfleet.trtllm.$pb: syntax ok from the installed collection"
done
"$venv/bin/ansible-doc" -l sparkfleet.trtllm 2>/dev/null | sed 's/^/module: /'
