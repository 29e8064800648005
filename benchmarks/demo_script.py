"""Downloads an experiment's standalone script from a running server, runs it in an empty
folder with `python -I`, and says how long it took and whether its variants equal the API's.

    .venv/bin/python benchmarks/demo_script.py http://127.0.0.1:8000 temperature [param=value ...]

On a language-model experiment the script first trains the server's model (the FULL one by
default), so this measures that training too, and the weights hash it prints against the
server's (SERVER_WEIGHTS in the file).
"""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode
from urllib.request import urlopen


def main(base: str, preset: str, pairs: list[str]) -> int:
    query = urlencode({"preset": preset, **dict(p.split("=", 1) for p in pairs)})
    with urlopen(f"{base}/api/demo/script?{query}", timeout=60) as response:
        script = response.read()
    with urlopen(f"{base}/api/demo?{query}", timeout=600) as response:
        api = json.load(response)["variants"]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{preset}.py"
        path.write_bytes(script)
        started = time.monotonic()
        run = subprocess.run(
            [sys.executable, "-I", str(path)], cwd=folder, capture_output=True, timeout=1800
        )
        took = time.monotonic() - started
    if run.returncode != 0:
        print(run.stderr.decode()[-2000:])
        return 1
    ours = json.loads(run.stdout)
    for line in run.stderr.decode().splitlines():
        if "weights" in line:
            print(line)
    print(f"{preset}: script of {len(script) / 1e6:.2f} MB ran in {took:.1f} s; ", end="")
    print("variants equal to the API's" if ours == api else "variants DIFFER from the API's")
    return 0 if ours == api else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3:]))
