import json
import subprocess
import sys

STAGE = "tests.support.stages:EchoStage"


def make_manifest(path, n, prefix="/data/a"):
    with open(path, "w") as fh:
        for i in range(n):
            fh.write(json.dumps({"audio_filepath": f"{prefix}{i}.wav", "duration": 1.0 + (i * 7) % 5,
                                 "text": f"t{i}"}) + "\n")
    return path


def read_jsonl(path):
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def amela(*args, check=None, **kw):
    proc = subprocess.run([sys.executable, "-m", "amela", *map(str, args)], capture_output=True, text=True, **kw)
    if check is not None:
        assert proc.returncode == check, proc.stdout + proc.stderr
    return proc
