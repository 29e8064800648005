"""Print the calibration workload's time on this machine's CPU with one torch thread (the
figure app/demo/calibration.py's REFERENCE_S was set from) and the speed a worker would report.
Usage: .venv/bin/python benchmarks/calibration.py"""

import torch

from app.demo.calibration import REFERENCE_S, calibrate

torch.set_num_threads(1)
for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
    runs = [calibrate(device, repeats=5) for _ in range(3)]
    print(
        f"{device}: median workload {sorted(r['seconds'] for r in runs)[1]:.4f} s "
        f"(reference {REFERENCE_S} s), speeds {[r['speed'] for r in runs]}"
    )
