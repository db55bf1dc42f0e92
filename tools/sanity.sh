#!/usr/bin/env bash
# Run `ansible-test sanity` on the git-tracked (and untracked, not ignored) files of this checkout.
# ansible-test needs the cwd to be .../ansible_collections/<ns>/<name>, so copy the files into such a
# tree in a temporary folder; the checkout itself is never modified.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$root/.venv}
work=$(mktemp -d /tmp/sparkfleet-sanity.XXXXXX)
trap 'rm -rf "$work"' EXIT
dest=$work/ansible_collections/sparkfleet/trtllm
mkdir -p "$dest"
cd "$root"
# The collections/ link only serves a plain checkout; the built collection excludes it too.
git ls-files -z --cached --others --exclude-standard | grep -zv '^collections/' |
  xargs -0 -I{} sh -c 'test -e "{}" || test -L "{}" && printf "%s\0" "{}"' |
  rsync -a --from0 --files-from=- ./ "$dest/"
# ansible-test offline: it fetches a pip bootstrap script unless this cache file exists
# (verified in shared lab-facts). The file bootstraps pip with ensurepip instead.
pipver=$("$venv/bin/python" - <<'PY'
import re, pathlib, ansible_test
src = (pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py").read_text()
m = re.search(r"default_packages = dict\(\s*pip='([^']+)'", src)
print(m.group(1) if m else "24.2")
PY
)
cache=$HOME/.ansible/test/cache
mkdir -p "$cache"
cat > "$cache/get_pip_${pipver//./_}.py" <<'PY'
import subprocess, sys
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)
PY
cd "$dest"
git init -q . && git add -A && git -c user.email=ci@localhost -c user.name=ci commit -qm sanity
pyver=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
"$venv/bin/ansible-test" sanity --venv --requirements --python "$pyver" --color no "$@"
