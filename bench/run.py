#!/usr/bin/env python3
"""bench/run.py: tinymalloc's benchmark runner (python3 standard library only).

    bench/run.py                 the whole suite, 5 runs per workload and allocator,
                                 plus the callgrind table; writes docs/benchmarks.md
                                 and docs/benchmarks-suite.svg
    bench/run.py --quick         one run of each (a smoke pass: timings are rough)
    bench/run.py --only larson,frag --runs 9
    bench/run.py --lib /path/to/libtinymalloc-override.so
    bench/run.py --suite FILE    run another suite described by a JSON file
                                 (how docs/mimalloc-bench.md is made)
    bench/run.py --alloc tinymalloc --variant 'detect=tinymalloc+TINYMALLOC_DETECT=1'
                                 an allocator run another way: with more environment,
                                 another library, or the programs built with other
                                 flags
    bench/run.py --detect        the detection mode's cost: tinymalloc, tinymalloc with
                                 TINYMALLOC_DETECT=1, ASan builds of the workloads and
                                 AFL++'s libdislocator, ratios to tinymalloc, and the
                                 instructions per operation of the preloaded columns
                                 (callgrind); the tables go into docs/detect.md (between
                                 its markers)

It builds what it needs (tinymalloc's override library with the `release`
preset into build/bench/tinymalloc, the workloads into build/bench/bin),
installs the Debian packages of the other allocators when they are missing
(libjemalloc2, libmimalloc2.0, libtcmalloc-minimal4, and valgrind for the
instruction counts), then runs every workload under glibc, jemalloc, mimalloc,
tcmalloc and tinymalloc through LD_PRELOAD, one process at a time, rotating the
order of the allocators from run to run. Each run goes through bench/tmrun.c,
which measures the wall time and takes the peak RSS from wait4() (the child's
own peak, not the runner's). docs/benchmarks.md explains the method.
"""
import argparse
import atexit
import datetime
import fcntl
import json
import math
import os
import platform
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BUILD = ROOT / "build" / "bench"
BIN = BUILD / "bin"

ALLOCATORS = ["glibc", "jemalloc", "mimalloc", "tcmalloc", "tinymalloc"]
# allocator -> (Debian package, library file name)
PACKAGES = {
    "jemalloc": ("libjemalloc2", "libjemalloc.so.2"),
    "mimalloc": ("libmimalloc2.0", "libmimalloc.so.2"),
    "tcmalloc": ("libtcmalloc-minimal4", "libtcmalloc_minimal.so.4"),
}
CFLAGS = ["-O2", "-g", "-Wall", "-Wextra", "-Werror", "-pthread", "-fno-builtin-malloc", "-fno-builtin-calloc",
          "-fno-builtin-realloc", "-fno-builtin-free"]
PROGRAMS = ["churn", "larson", "prodcons", "trees", "frag", "medium", "large", "realloc", "aligned"]

# Callgrind: operation -> (argument of bench/ops, label)
OPS = [
    ("small", "small pair: `malloc(32)` + `free`"),
    ("xthread", "cross-thread pair: `malloc(32)` on one thread, `free` on another"),
    ("medium", "medium pair: `malloc(40960)` + `free`"),
    ("calloc", "`calloc(16, 8)` + `free`"),
    ("realloc", "`malloc(32)`, `realloc` to 100, to 1000, `free`"),
]
OPS_N = 50000  # runs with N and 2N operations

# --variant NAME=BASE[+VAR=VALUE]...[+cflags:FLAGS][+as_mb:N]: name -> {base, lib, env, cflags, bin, as_mb}
VARIANTS = {}

# The column ratios are taken to (glibc; tinymalloc with --detect).
REF = "glibc"

# --detect: the columns of docs/detect.md's cost table. libdislocator keeps
# every freed block's pages mapped (PROT_NONE, never reused): its runs get an
# address-space limit, so that a workload making millions of allocations
# fails with an out-of-memory report instead of taking the machine's memory.
DISLOCATOR = Path("/usr/lib/afl/libdislocator.so")
DISLOCATOR_AS_MB = 4096
DETECT_VARIANTS = [
    "detect=tinymalloc+TINYMALLOC_DETECT=1",
    "asan=glibc+cflags:-fsanitize=address+ASAN_OPTIONS=detect_leaks=0",
    f"dislocator={DISLOCATOR}+as_mb:{DISLOCATOR_AS_MB}",
]
DETECT_DOC = "docs/detect.md"
DETECT_BEGIN = "<!-- cost table: written by bench/run.py --detect, from here -->"
DETECT_END = "<!-- cost table: to here -->"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def die(msg):
    log("run.py: " + msg)
    sys.exit(1)


def sh(cmd, nice=10, **kw):
    """Runs a build command at low priority; its output goes to the terminal."""
    full = (["nice", "-n", str(nice)] if nice else []) + [str(c) for c in cmd]
    log("+ " + " ".join(shlex.quote(c) for c in full))
    subprocess.run(full, check=True, **kw)


# ---------------------------------------------------------------- allocators

def multiarch_dirs():
    dirs = []
    try:
        ma = subprocess.run(["gcc", "-print-multiarch"], capture_output=True, text=True).stdout.strip()
        if ma:
            dirs.append(Path("/usr/lib") / ma)
    except OSError:
        pass
    dirs += [Path("/usr/lib/x86_64-linux-gnu"), Path("/usr/lib/aarch64-linux-gnu"), Path("/usr/lib64"), Path("/usr/lib")]
    return dirs


def find_lib(name):
    for d in multiarch_dirs():
        if (d / name).exists():
            return d / name
    return None


def apt_install(packages, what):
    if not packages:
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        log(f"run.py: {what} missing and cannot install it here (needs root and apt-get): {' '.join(packages)}")
        return
    cmd = ["apt-get", "install", "-y", "--no-install-recommends"] + packages
    log(f"run.py: installing {' '.join(packages)} ({what})")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(cmd, env=env).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env)
        subprocess.run(cmd, env=env)


def setup_allocators(wanted, tinylib, install=True):
    """Returns {allocator: library path or None for glibc}, installing the
    Debian packages of the others when they are missing."""
    missing = [PACKAGES[a][0] for a in wanted if a in PACKAGES and find_lib(PACKAGES[a][1]) is None]
    if missing and install:
        apt_install(missing, "allocator libraries")
    libs = {}
    for a in wanted:
        if a == "glibc":
            libs[a] = None
        elif a == "tinymalloc":
            libs[a] = tinylib
        else:
            path = find_lib(PACKAGES[a][1])
            if path is None:
                log(f"run.py: {a} not available ({PACKAGES[a][0]}); skipped")
                continue
            libs[a] = path
    return libs


def package_version(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else "?"


# ---------------------------------------------------------------- building

def build_tinymalloc(jobs):
    """The override library with the compile flags of the `release` preset
    (tests off), in its own binary directory so that it never disturbs
    build/release."""
    bdir = BUILD / "tinymalloc"
    if not (bdir / "CMakeCache.txt").exists():
        sh(["cmake", "--preset", "release", "-B", bdir, "-DTINYMALLOC_TESTS=OFF"], cwd=ROOT,
           stdout=subprocess.DEVNULL)
    sh(["cmake", "--build", bdir, "--target", "tinymalloc_override", "-j", str(jobs)], cwd=ROOT)
    lib = bdir / "libtinymalloc-override.so"
    if not lib.exists():
        die(f"{lib} was not built")
    return lib


def newer(target, sources):
    return target.exists() and all(target.stat().st_mtime >= s.stat().st_mtime for s in sources)


def parse_variant(text):
    """NAME=BASE[+VAR=VALUE]...[+cflags:FLAGS][+as_mb:N] (see --help)."""
    name, _, spec = text.partition("=")
    parts = spec.split("+")
    if not name or not parts[0] or name in ALLOCATORS or not re.fullmatch(r"[\w.-]+", name):
        die(f"--variant {text!r}: expected NAME=BASE[+VAR=VALUE]...[+cflags:FLAGS][+as_mb:N] with a new name")
    v = {"base": parts[0], "env": {}, "cflags": [], "bin": None, "as_mb": None}
    for part in parts[1:]:
        if part.startswith("cflags:"):
            v["cflags"] += shlex.split(part[len("cflags:"):])
        elif part.startswith("as_mb:") and part[len("as_mb:"):].isdigit():
            v["as_mb"] = int(part[len("as_mb:"):])
        elif "=" in part:
            k, _, val = part.partition("=")
            v["env"][k] = val
        else:
            die(f"--variant {text!r}: {part!r} is neither VAR=VALUE nor cflags:FLAGS")
    if v["base"] not in ALLOCATORS and not Path(v["base"]).exists():
        die(f"--variant {text!r}: {v['base']} is neither an allocator ({', '.join(ALLOCATORS)}) nor a library")
    return name, v


def build_variant_programs(name, cflags):
    """The suite's own programs again, with the variant's flags added, in
    build/bench/bin-NAME (python and gcc are not ours to rebuild)."""
    vbin = BUILD / f"bin-{name}"
    vbin.mkdir(parents=True, exist_ok=True)
    stamp = vbin / "flags.txt"
    flags = " ".join(cflags)
    fresh = stamp.exists() and stamp.read_text() == flags
    for prog in PROGRAMS:
        out, src = vbin / prog, BENCH / f"{prog}.c"
        if not (fresh and newer(out, [src, BENCH / "bench.h"])):
            sh(["gcc"] + CFLAGS + cflags + ["-o", out, src])
    stamp.write_text(flags)
    return vbin


def build_programs():
    BIN.mkdir(parents=True, exist_ok=True)
    header = BENCH / "bench.h"
    for name in PROGRAMS:
        out, src = BIN / name, BENCH / f"{name}.c"
        if not newer(out, [src, header]):
            sh(["gcc"] + CFLAGS + ["-o", out, src])
    out, src = BIN / "ops", BENCH / "ops.c"
    if not newer(out, [src]):
        sh(["gcc", "-O2", "-g", "-Wall", "-Wextra", "-Werror", "-pthread", "-fno-builtin", "-o", out, src])
    out, src = BIN / "tmrun", BENCH / "tmrun.c"
    if not newer(out, [src]):
        flags = ["gcc", "-O2", "-Wall", "-Wextra", "-Werror"]
        try:  # static: the smallest possible image before exec (see tmrun.c)
            sh(flags + ["-static", "-o", out, src])
        except subprocess.CalledProcessError:
            sh(flags + ["-o", out, src])
    # The gcc workload: a generated source and its object as gcc makes it under glibc.
    src, ref = BUILD / "cc_input.c", BUILD / "cc_input.ref.o"
    if not newer(ref, [BENCH / "gen_cc.py"]):
        sh([sys.executable, BENCH / "gen_cc.py", src])
        sh(["gcc", "-O2", "-c", src, "-o", ref])


def python_for_workload():
    # The distribution's interpreter (a version manager's `python3` may be a
    # shell script, and then the shell would be measured too).
    for p in ("/usr/bin/python3", shutil.which("python3"), sys.executable):
        if p and Path(p).exists():
            return str(Path(p).resolve())
    die("no python3")


def own_workloads():
    py = python_for_workload()
    b = str(BIN)
    out = "{tmp}/cc_input.o"  # {tmp}: this runner's own scratch directory
    gcc_cmd = 'gcc -O2 -c "$1" -o "$2" && cmp -s "$2" "$3"'
    return [
        dict(name="churn-lifo", cmd=[f"{b}/churn", "lifo"],
             desc="12 M small blocks (16-512 B) in batches of 1000, freed in reverse order"),
        dict(name="churn-fifo", cmd=[f"{b}/churn", "fifo"],
             desc="a ring of 20,000 small blocks; 12 M times the oldest is freed and replaced"),
        dict(name="larson", cmd=[f"{b}/larson"],
             desc="4 threads replace random blocks (16 B-2 KiB) in arrays of 2000; 10 generations "
                  "of threads, each taking over another thread's array (10 M replacements)"),
        dict(name="prodcons", cmd=[f"{b}/prodcons"],
             desc="2 producer/consumer pairs, 6.1 M blocks (16 B-4 KiB) malloc'd on one thread "
                  "and freed on the other"),
        dict(name="trees", cmd=[f"{b}/trees"],
             desc="binary trees of depth 4-16 built, walked and dropped beside a long-lived one of depth 17"),
        dict(name="frag", cmd=[f"{b}/frag"], peak_live=True,
             desc="160 MiB of live objects (16 B-1 MiB, mostly small, every byte written); "
                  "4 cycles of random frees, regrowth with larger sizes, realloc"),
        dict(name="medium", cmd=[f"{b}/medium"],
             desc="100 live blocks of 16 KiB-1 MiB, 100,000 random replacements, every page written"),
        dict(name="large", cmd=[f"{b}/large"],
             desc="4 live blocks of 1-32 MiB, 300 random replacements, every page written"),
        dict(name="realloc", cmd=[f"{b}/realloc"],
             desc="500 string builders grown by realloc up to 16 KiB (2 M reallocs); one block "
                  "grown 2 MiB -> 160 MiB in 1 MiB steps"),
        dict(name="aligned", cmd=[f"{b}/aligned"],
             desc="1.5 M posix_memalign/aligned_alloc/memalign, alignment 16 B-64 KiB, size 8 B-32 KiB"),
        dict(name="python", cmd=[py, str(BENCH / "pyload.py")], env={"PYTHONMALLOC": "malloc"},
             desc=f"`{py} bench/pyload.py` with PYTHONMALLOC=malloc (objects, dicts, json, regex, sort)"),
        dict(name="gcc", cmd=["sh", "-c", gcc_cmd, "sh", str(BUILD / "cc_input.c"), out,
                              str(BUILD / "cc_input.ref.o")],
             desc="`gcc -O2 -c` of a generated 1,900-line C file (bench/gen_cc.py); the object "
                  "must be byte-identical to the one made under glibc"),
    ]


# ---------------------------------------------------------------- running

def select(items, only, key):
    if not only:
        return items
    pats = [p.strip() for p in only.split(",") if p.strip()]

    def matches(p, name):  # a whole name, or else part of names
        exact = any(p == key(it) for it in items)
        return p == name if exact else p in name

    return [it for it in items if any(matches(p, key(it)) for p in pats)]


def scratch():
    """This process's scratch directory (two runners never share files)."""
    tmp = BUILD / "tmp" / str(os.getpid())
    tmp.mkdir(parents=True, exist_ok=True)
    return tmp


def run_once(w, alloc, lib, timeout, nice):
    """One run; None when `alloc` is a variant whose programs were rebuilt and
    this workload is not one of them."""
    tmp = scratch()
    res_file = tmp / "result.txt"
    if res_file.exists():
        res_file.unlink()
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.update(w.get("env", {}))
    argv = [str(c) for c in w["cmd"]]
    variant = VARIANTS.get(alloc)
    if variant:
        env.update(variant["env"])
        if variant["bin"]:
            ours = str(BIN) + "/"
            if not any(c.startswith(ours) for c in argv):
                return None
            argv = [str(variant["bin"]) + "/" + c[len(ours):] if c.startswith(ours) else c for c in argv]
    env["TMRUN_PRELOAD"] = str(lib) if lib else ""
    cmd = ([] if not nice else ["nice", "-n", str(nice)]) + [str(BIN / "tmrun"), str(res_file), str(timeout)] + \
        [c.replace("{tmp}", str(tmp)) for c in argv]
    stdin = w.get("stdin") or os.devnull
    limit = None
    if variant and variant.get("as_mb"):  # inherited by tmrun and the workload (RLIMIT_AS)
        as_bytes = variant["as_mb"] << 20

        def limit():
            resource.setrlimit(resource.RLIMIT_AS, (as_bytes, as_bytes))
    with open(tmp / "stdout.txt", "wb") as so, open(tmp / "stderr.txt", "wb") as se, open(stdin, "rb") as si:
        subprocess.run(cmd, stdin=si, stdout=so, stderr=se, cwd=w.get("cwd", str(tmp)), env=env,
                       preexec_fn=limit)
    rec = {"ok": False}
    if res_file.exists():
        for field in res_file.read_text().split():
            k, _, v = field.partition("=")
            rec[k] = float(v) if "." in v else int(v)
    out = (tmp / "stdout.txt").read_text(errors="replace")
    err = (tmp / "stderr.txt").read_text(errors="replace")
    m = re.search(r"^peak_live_bytes (\d+)$", out, re.M)
    if m:
        rec["peak_live"] = int(m.group(1))
    rec["ok"] = rec.get("exit") == 0 and rec.get("signal") == 0 and rec.get("timeout") == 0
    if rec["ok"] and w.get("time_regex"):
        # A fixed-time program: its time is derived from the throughput it prints.
        m = re.search(w["time_regex"], out + "\n" + err, re.M)
        if m is None or float(m.group(1)) <= 0:
            rec["ok"], rec["no_score"] = False, True
        else:
            v = float(m.group(1))
            rec["score"] = w["time_num"] / v if w.get("time_num") else v
    if not rec["ok"]:
        logs = BUILD / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        stem = f"{w['name']}.{alloc}.{int(time.time())}"
        (logs / f"{stem}.out").write_text(out)
        (logs / f"{stem}.err").write_text(err)
        rec["log"] = str(logs / stem)
        rec["err_tail"] = err.strip().splitlines()[-3:] if err.strip() else []
    return rec


def describe_failure(rec):
    if "exit" not in rec:
        return "no result"
    if rec.get("no_score"):
        return "no throughput line"
    if rec.get("timeout"):
        return "timeout"
    if rec.get("signal"):
        return {6: "SIGABRT", 9: "SIGKILL", 11: "SIGSEGV", 7: "SIGBUS", 4: "SIGILL"}.get(rec["signal"],
                                                                                         f"signal {rec['signal']}")
    return f"exit {rec['exit']}"


def run_timing(workloads, libs, runs, timeout, nice):
    allocs = list(libs)
    results = {w["name"]: {a: [] for a in allocs} for w in workloads}
    total = len(workloads) * runs * len(allocs)
    done, t0 = 0, time.monotonic()
    for w in workloads:
        for r in range(runs):
            k = r % len(allocs)
            for a in allocs[k:] + allocs[:k]:
                done += 1
                if any(not rec["ok"] for rec in results[w["name"]][a]):
                    # The cell shows the failure whatever the other runs do.
                    log(f"[{done:4d}/{total}] {w['name']:<16} {a:<10} run {r + 1}/{runs} skipped (failed before)")
                    continue
                rec = run_once(w, a, libs[a], timeout, nice)
                if rec is None:
                    log(f"[{done:4d}/{total}] {w['name']:<16} {a:<10} run {r + 1}/{runs} n/a (not rebuilt for it)")
                    continue
                results[w["name"]][a].append(rec)
                el = time.monotonic() - t0
                eta = el / done * (total - done)
                if rec["ok"]:
                    what = f"{rec['wall']:7.2f} s {rec['maxrss_kb'] / 1024:8.1f} MiB"
                    if "score" in rec:
                        what += f"  (time from its throughput: {rec['score']:.3f})"
                else:
                    what = f"FAILED ({describe_failure(rec)}; {rec.get('log', '')})"
                log(f"[{done:4d}/{total}] {w['name']:<16} {a:<10} run {r + 1}/{runs} {what}"
                    f"   eta {int(eta // 60)}m{int(eta % 60):02d}s")
    return results


def summarize(results):
    """{workload: {alloc: {wall, cpu, rss_kb, peak_live, fail}}} from the medians."""
    out = {}
    for wname, per in results.items():
        out[wname] = {}
        for a, recs in per.items():
            good = [r for r in recs if r["ok"]]
            bad = [r for r in recs if not r["ok"]]
            s = {"runs": len(recs), "failed": len(bad)}
            if bad:
                s["fail"] = describe_failure(bad[0])
                if bad[0].get("wall") is not None:
                    s["fail_wall"] = bad[0]["wall"]
                s["err_tail"] = bad[0].get("err_tail", [])
            if good and not bad:
                s["wall"] = statistics.median(r.get("score", r["wall"]) for r in good)
                if any("score" in r for r in good):
                    s["derived"] = True
                    s["wall_real"] = statistics.median(r["wall"] for r in good)
                s["cpu"] = statistics.median(r["user"] + r["sys"] for r in good)
                s["rss_kb"] = statistics.median(r["maxrss_kb"] for r in good)
                s["minflt"] = statistics.median(r["minflt"] for r in good)
                s["walls"] = [r["wall"] for r in good]
                lives = [r["peak_live"] for r in good if "peak_live" in r]
                if lives:
                    s["peak_live"] = max(lives)
            out[wname][a] = s
    return out


# ---------------------------------------------------------------- callgrind

def parse_callgrind(path):
    """Instructions (Ir) by ELF object: self costs only (the line after a
    calls= line is the inclusive cost of that call and is skipped)."""
    names, cur, skip, tot = {}, None, False, {}
    with open(path) as f:
        for line in f:
            if skip:
                skip = False
                continue
            if line.startswith(("ob=", "cob=")):
                key, _, val = line.rstrip("\n").partition("=")
                m = re.match(r"\((\d+)\)(?: (.*))?$", val)
                name = val
                if m:
                    if m.group(2):
                        names[m.group(1)] = m.group(2)
                    name = names.get(m.group(1), val)
                if key == "ob":
                    cur = name
            elif line.startswith("calls="):
                skip = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                parts = line.split()
                if len(parts) >= 2:
                    tot[cur] = tot.get(cur, 0) + int(parts[1])
    return tot


def callgrind_one(kind, n, lib, extra_env=None):
    tmp = scratch()
    outf = tmp / "callgrind.out"
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if lib:
        env["LD_PRELOAD"] = str(lib)
    env.update(extra_env or {})
    # callgrind has no malloc replacement of its own, but Valgrind's core would
    # still redirect malloc in the main executable and libc to nowhere if a
    # tool asked for it; nouserintercepts keeps every preloaded malloc in place.
    # Counts do not depend on the machine's load: always run at low priority.
    cmd = ["nice", "-n", "10", "valgrind", "--tool=callgrind", f"--callgrind-out-file={outf}", "--soname-synonyms=somalloc=nouserintercepts",
           str(BIN / "ops"), kind, str(n)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"valgrind {kind} {n} failed: {r.stderr.strip().splitlines()[-3:]}")
    return parse_callgrind(outf)


def run_callgrind(libs, kinds, envs=None):
    """Instructions per operation of each allocator in `libs` (name -> preloaded
    library, None for glibc), run with the environment `envs` gives its name."""
    envs = envs or {}
    if shutil.which("valgrind") is None:
        apt_install(["valgrind"], "valgrind for the instruction counts")
    if shutil.which("valgrind") is None:
        log("run.py: no valgrind; instruction counts skipped")
        return {}
    ops_bin = str(BIN / "ops")
    table = {}
    total = len(kinds) * len(libs)
    done = 0
    for kind, _ in kinds:
        table[kind] = {}
        for a, lib in libs.items():
            done += 1
            try:
                c1 = callgrind_one(kind, OPS_N, lib, envs.get(a))
                c2 = callgrind_one(kind, 2 * OPS_N, lib, envs.get(a))
            except RuntimeError as e:
                log(f"[{done:3d}/{total}] callgrind {kind:<8} {a:<10} FAILED: {e}")
                table[kind][a] = {"fail": str(e)}
                continue
            diff = {ob: c2.get(ob, 0) - c1.get(ob, 0) for ob in set(c1) | set(c2)}
            alloc_side = sum(v for ob, v in diff.items() if ob != ops_bin) / OPS_N
            loop = diff.get(ops_bin, 0) / OPS_N
            # Which object did the work: libc for glibc; for the others the
            # preloaded library, which includes code callgrind cannot name
            # ("???": tcmalloc keeps malloc and free in a section of their own).
            def base(ob):
                return Path(ob).name if ob else "???"

            system = ("libc.so.6", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1")
            if lib:
                in_lib = sum(v for ob, v in diff.items() if ob != ops_bin and base(ob) not in system
                             and not base(ob).startswith("vgpreload")) / OPS_N
                where = Path(lib).name
            else:
                in_lib = sum(v for ob, v in diff.items() if base(ob) == "libc.so.6") / OPS_N
                where = "libc"
            table[kind][a] = {"alloc": alloc_side, "loop": loop, "in_lib": in_lib,
                              "by_object": {base(ob): v / OPS_N for ob, v in diff.items() if abs(v) >= OPS_N / 10}}
            # A preload that is not in effect leaves (nearly) nothing in its library. A quarter, not
            # half: tinymalloc's detection mode fills a freed medium block with libc's memset, which
            # Valgrind counts a byte at a time (its `rep stosb`, below).
            if in_lib < 0.25 * alloc_side:
                table[kind][a]["suspect"] = f"only {in_lib:.0f} of {alloc_side:.0f} instructions in {where}"
            log(f"[{done:3d}/{total}] callgrind {kind:<8} {a:<10} {alloc_side:8.1f} instructions/op "
                f"({in_lib:.1f} in {where}, {loop:.1f} in the loop)"
                + (" SUSPECT: is the preload in effect?" if "suspect" in table[kind][a] else ""))
    return table


# ---------------------------------------------------------------- reporting

def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def fmt_ratio(x):
    return "-" if x is None else f"{x:.2f}x"


def git(*args):
    try:
        r = subprocess.run(["git", "-C", str(ROOT)] + list(args), capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else ""
    except OSError:
        return ""


def machine_info():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1048576:.0f} GiB"
    except OSError:
        pass
    distro = ""
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                distro = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    libc = os.confstr("CS_GNU_LIBC_VERSION") if hasattr(os, "confstr") else "?"
    gcc = subprocess.run(["gcc", "-dumpfullversion"], capture_output=True, text=True).stdout.strip()
    return (f"{cpu}, {os.cpu_count()} CPUs, {mem} RAM; {distro}, Linux {platform.release()}, "
            f"{libc}, gcc {gcc}")


def allocator_versions(libs):
    vs = []
    for a in libs:
        if a in VARIANTS:
            v = VARIANTS[a]
            base = v["base"] if v["base"] in ALLOCATORS else f"`{v['base']}` preloaded"
            how = [f"`{k}={val}`" for k, val in v["env"].items()]
            if v["cflags"]:
                how.append(f"the suite's own programs built with `{' '.join(v['cflags'])}`")
            if v.get("as_mb"):
                how.append(f"an address-space limit (`RLIMIT_AS`) of {v['as_mb']} MiB")
            vs.append(f"{a}: {base}" + (" with " + ", ".join(how) if how else ""))
        elif a == "glibc":
            vs.append(f"glibc {os.confstr('CS_GNU_LIBC_VERSION').split()[-1]}")
        elif a in PACKAGES:
            vs.append(f"{a} {package_version(PACKAGES[a][0])} (Debian `{PACKAGES[a][0]}`)")
    return vs


def table_metric(summary, workloads, allocs, key, fmt, base_names=None):
    if base_names is None:
        base_names = (REF, "mimalloc")
    head = "| workload | " + " | ".join(allocs) + " |"
    lines = [head, "|" + " --- |" * (len(allocs) + 1)]
    ratios = {b: {a: [] for a in allocs} for b in base_names}
    for w in workloads:
        per = summary[w]
        cells = []
        for a in allocs:
            s = per.get(a, {})
            if key not in s:
                when = f" after {s['fail_wall']:.1f} s" if s.get("fail_wall") is not None else ""
                cells.append(f"**{s.get('fail', 'n/a')}**{when}" if s.get("fail") else "-")
                continue
            cell = f"{s[key]:.2f}" if key == "wall" and s.get("derived") else fmt(s[key])
            g = per.get(REF, {}).get(key)
            if g and a != REF:
                cell += f" ({s[key] / g:.2f}x)"
            cells.append(cell)
            for b in base_names:
                bv = per.get(b, {}).get(key)
                if bv:
                    ratios[b][a].append(s[key] / bv)
        mark = " \\*" if key == "wall" and any(per.get(a, {}).get("derived") for a in allocs) else ""
        lines.append(f"| {w}{mark} | " + " | ".join(cells) + " |")
    for b in base_names:
        if b not in allocs:
            continue
        lines.append(f"| **geomean vs {b}** | " + " | ".join(fmt_ratio(geomean(ratios[b][a])) for a in allocs) + " |")
    return "\n".join(lines), ratios


def callgrind_ref(cg):
    """The column the instruction counts are compared with: glibc, else
    tinymalloc's normal mode, else none."""
    counted = {a for k in cg for a in cg[k]}
    return next((a for a in (REF, "tinymalloc") if a in counted), None)


def callgrind_markdown(cg, allocs):
    """The table of instructions per operation, each column's figure also as a
    ratio to callgrind_ref's, with a geometric mean of those ratios."""
    ref = callgrind_ref(cg)
    allocs = [a for a in allocs if any(a in cg[k] for k in cg)]
    lines = ["| operation | " + " | ".join(allocs) + " |", "|" + " --- |" * (len(allocs) + 1)]
    ratios = {a: [] for a in allocs}
    for kind, label in OPS:
        if kind not in cg:
            continue
        cells = []
        base = cg[kind].get(ref, {}).get("alloc") if ref else None
        for a in allocs:
            c = cg[kind].get(a)
            if c is None:
                cells.append("-")
            elif "fail" in c:
                cells.append("**failed**")
            else:
                cell = f"{c['alloc']:.0f}" + (" (?)" if c.get("suspect") else "")
                if base and a != ref and c["alloc"] > 0:
                    ratios[a].append(c["alloc"] / base)
                    cell += f" ({c['alloc'] / base:.2f}x)"
                cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if ref and any(ratios.values()):
        lines.append(f"| **geomean vs {ref}** | " + " | ".join(
            "1.00x" if a == ref else (f"{math.exp(sum(map(math.log, ratios[a])) / len(ratios[a])):.2f}x"
                                      if ratios[a] else "-") for a in allocs) + " |")
    return "\n".join(lines)


def svg_escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


COLORS = {"glibc": "#7f7f7f", "jemalloc": "#1f77b4", "mimalloc": "#2ca02c", "tcmalloc": "#ff7f0e",
          "tinymalloc": "#d62728", "detect": "#9467bd", "asan": "#8c564b", "dislocator": "#17becf"}


def write_svg(path, title, summary, workloads, allocs, runs_note):
    """Two panels of grouped horizontal bars: wall time and peak RSS as ratios
    to glibc, on a log2 axis from 1/8x to 8x (longer bars are clipped and
    labelled)."""
    panels = [("wall", f"median wall time / {REF}"), ("rss_kb", f"peak RSS / {REF}")]
    allocs = [a for a in allocs if a != REF]  # the reference is the 1x line
    bar, gap = 7, 10
    row = bar * len(allocs) + gap
    left, pw, pgap, top = 120, 330, 60, 84
    width = left + len(panels) * pw + (len(panels) - 1) * pgap + 50  # room for the labels of clipped bars
    height = top + row * len(workloads) + 40
    lo, hi = -3.0, 3.0

    def xpos(px0, v):
        v = min(max(math.log2(v), lo), hi)
        return px0 + (v - lo) / (hi - lo) * pw

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
         f'font-family="DejaVu Sans, Arial, sans-serif" font-size="11">',
         f'<rect width="{width}" height="{height}" fill="white"/>',
         f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="14" font-weight="bold">'
         f'{svg_escape(title)}</text>',
         f'<text x="{width / 2}" y="34" text-anchor="middle" fill="#555">{svg_escape(runs_note)}</text>']
    lx = left
    for a in allocs:
        o.append(f'<rect x="{lx}" y="44" width="10" height="10" fill="{COLORS.get(a, "#000")}"/>')
        o.append(f'<text x="{lx + 14}" y="53">{a}</text>')
        lx += 14 + 8 * len(a) + 16
    for i, w in enumerate(workloads):
        y = top + i * row
        if i % 2 == 1:
            o.append(f'<rect x="10" y="{y - gap / 2}" width="{width - 30}" height="{row}" '
                     f'fill="#f4f4f4"/>')
        o.append(f'<text x="{left - 6}" y="{y + row / 2}" text-anchor="end">{svg_escape(w)}</text>')
    for p, (key, label) in enumerate(panels):
        px0 = left + p * (pw + pgap)
        ybot = top + row * len(workloads) - gap / 2
        o.append(f'<text x="{px0 + pw / 2}" y="{top - 14}" text-anchor="middle" font-weight="bold">'
                 f'{svg_escape(label)}</text>')
        for t in (0.125, 0.25, 0.5, 1, 2, 4, 8):
            x = xpos(px0, t)
            o.append(f'<line x1="{x:.1f}" y1="{top - gap / 2}" x2="{x:.1f}" y2="{ybot}" '
                     f'stroke="{"#000" if t == 1 else "#ccc"}" stroke-width="{1.2 if t == 1 else 0.6}"/>')
            o.append(f'<text x="{x:.1f}" y="{ybot + 14}" text-anchor="middle">{t:g}x</text>')
        for i, w in enumerate(workloads):
            per = summary[w]
            base = per.get(REF, {}).get(key)
            for j, a in enumerate(allocs):
                y = top + i * row + j * bar
                s = per.get(a, {})
                x1 = xpos(px0, 1)
                if s.get("fail"):
                    o.append(f'<text x="{x1 + 3}" y="{y + bar}" fill="{COLORS.get(a, "#000")}" '
                             f'font-size="9">{svg_escape(a)}: {svg_escape(s["fail"])}</text>')
                    continue
                if not base or key not in s:
                    continue
                r = s[key] / base
                x2 = xpos(px0, r)
                xa, xb = min(x1, x2), max(x1, x2)
                o.append(f'<rect x="{xa:.1f}" y="{y}" width="{max(xb - xa, 1):.1f}" height="{bar - 1}" '
                         f'fill="{COLORS.get(a, "#000")}"><title>{a} {w}: {r:.2f}x</title></rect>')
                if r > 2 ** hi or r < 2 ** lo:
                    o.append(f'<text x="{xb + 2 if r > 1 else xa - 2}" y="{y + bar - 1}" font-size="8" '
                             f'text-anchor="{"start" if r > 1 else "end"}">{r:.1f}x</text>')
    o.append("</svg>")
    Path(path).write_text("\n".join(o) + "\n")


METHOD = """\
## Method

- Every run is one process started by `bench/tmrun` (fork, `LD_PRELOAD` set in the child only, exec,
  `wait4`). Wall time is measured around it; peak RSS is the child's `ru_maxrss` from `wait4` (for
  `gcc`, the largest of the driver, `cc1` and `as`). `ru_maxrss` keeps the peak of the image a process
  replaced with `exec`: tmrun is a small static program, so that floor is small (`/bin/true` reports
  under 1 MiB), where a child forked by the Python runner itself would start from the runner's peak.
- The allocators: glibc (no preload) and, through `LD_PRELOAD`, the Debian builds of jemalloc, mimalloc
  and tcmalloc (minimal), and tinymalloc's `libtinymalloc-override.so` ({tinymalloc}), all with their
  default options.
- Runs alternate: for each workload, run 1 goes glibc, jemalloc, mimalloc, tcmalloc, tinymalloc, run 2
  starts one further along, and so on. One process runs at a time. Tables give the **median** of the runs;
  a cell that failed in any run shows the failure instead of a number.
- Ratios: each allocator's median divided by {ref}'s (in parentheses) and by mimalloc's; the geometric
  means are over the workloads where both have a result. CPU time is user + system time of the process
  (and its children): less disturbed than wall time on a shared machine, but it counts every thread.
"""

SELF_CHECK = """\
- Every workload checks its own results (block contents, counts, sums; the gcc object must be
  byte-identical to glibc's) and exits non-zero when one is wrong.
"""

RUNNING = """\
## Running it

```sh
bench/run.py                 # everything: 5 runs per workload and allocator, then the callgrind table
bench/run.py --quick         # one run of each (a smoke pass)
bench/run.py --runs 9 --only larson,prodcons --alloc glibc,mimalloc,tinymalloc
bench/run.py --callgrind-only
bench/run.py --lib build/release/libtinymalloc-override.so --lib-label "my change"
bench/run.py --report-only --notes notes.md    # rewrite this page from the last run's saved results
bench/run.py --detect --runs 3                 # the detection mode's cost table, in docs/detect.md
```

Without `--lib`, the runner builds tinymalloc with the `release` preset's flags into `build/bench/tinymalloc`
(tests off; `build/release` is left alone). A run restricted with `--only`, `--alloc`, `--no-callgrind` or
`--callgrind-only` writes `build/bench/results.md` instead of this page unless `--out` is given. Raw
results (every run) are in `build/bench/results.json` and `build/bench/callgrind.json`; stdout and stderr
of a failed run are kept in `build/bench/logs/`. `--nice N` runs the workloads at a lower priority (builds
and callgrind always run at nice 10). `--timeout S` (default 300) kills a run that hangs. Only one runner
measures at a time in a checkout: a second one waits for the first (`build/bench/run.lock`).

`--suite FILE` runs another set of programs the same way (this is how `docs/mimalloc-bench.md` is made).
The file is JSON: `{"title", "out", "plot", "intro", "workloads": [...]}`, where `out` and `plot` are
paths relative to the repository and each workload is `{"name", "cmd": [argv...], "desc"}` with optional
`"cwd"`, `"env": {...}`, `"stdin": path` (`{tmp}` in an argument is replaced by the runner's scratch
directory), and, for a program that runs for a fixed time and prints its
throughput, `"time_regex"` (its first group is read from stdout or stderr) and `"time_num"` (the time is
then `time_num / value`; without it the value is the time).
"""

CALLGRIND_METHOD = """\
Instructions per operation, from `valgrind --tool=callgrind`: counts, not time, so the machine's load does
not change them; repeated runs agree to within a few instructions, except where an allocator does work
driven by the clock (see the caveat). `bench/ops KIND N` keeps 64 blocks of each size it uses live (a
program's other objects: without them mimalloc empties and retires its page on every free), runs 20,000
warm-up operations, then N. It runs with N = {n} and 2N; the difference, divided by N, cancels start-up and
warm-up. The figure counts the instructions executed outside the benchmark program itself, that is in the
allocator and what it calls (libc's `memcpy` for realloc, `memset` for calloc, system call stubs; not the
kernel), and leaves out the benchmark's own loop and call sites (13 to 29 instructions per operation).
Valgrind runs with `--soname-synonyms=somalloc=nouserintercepts` (callgrind replaces no malloc, and this
keeps every preloaded one in place); the runner checks from the per-object costs that the instructions
were spent in the preloaded library (or in libc for glibc), and marks a figure "(?)" when not.
Caveat: time passes about 50 times slower under Valgrind, so clock-driven work (tinymalloc's purge every
10 ms, jemalloc's and mimalloc's decay) happens more often per operation than natively; jemalloc's medium
pair, for one, moved by about 3% between two runs.
"""


def write_report(args, out_md, plot, title, intro, workloads, summary, cg, libs, timing_meta, own_suite):
    allocs = list(libs)
    wnames = [w["name"] for w in workloads]
    commit, dirty = timing_meta["commit"], timing_meta["dirty"]
    tiny = args.lib_label or (f"{args.lib}" if args.lib else
                              f"built from commit {commit}" + (" with uncommitted changes in src/" if dirty else ""))
    md = [f"# {title}", "", f"Generated by `{timing_meta['command']}` on {timing_meta['date']}, "
          f"repository commit {commit}.", "",
          f"- Machine: {timing_meta['machine']}.",
          f"- Allocators: " + "; ".join(timing_meta["versions"]) + f"; tinymalloc: {tiny}.",
          ]
    if timing_meta.get("runs"):
        md.append(f"- Runs: {timing_meta['runs']} per workload and allocator; load average "
                  f"{timing_meta['load_start']} at the start, {timing_meta['load_end']} at the end "
                  f"(timing took {timing_meta['minutes']:.1f} min).")
    md.append("")
    if intro:
        md += [intro.rstrip(), ""]
    if args.notes:
        md += [Path(args.notes).read_text().rstrip(), ""]
    if summary:
        md += [f"![time and peak RSS relative to {REF}]({os.path.relpath(plot, Path(out_md).parent)})", ""]
        t, _ = table_metric(summary, wnames, allocs, "wall", lambda v: f"{v:.2f} s")
        md += ["## Wall time", "", f"Median wall time in seconds (ratio to {REF}).", "", t, ""]
        if any(s.get("derived") for per in summary.values() for s in per.values()):
            md += ["\\* a fixed-time program: the time is derived from the throughput it prints "
                   "(see the introduction), not its wall time.", ""]
        t, _ = table_metric(summary, wnames, allocs, "cpu", lambda v: f"{v:.2f} s")
        md += ["## CPU time", "", f"Median user + system time in seconds (ratio to {REF}).", "", t, ""]
        t, _ = table_metric(summary, wnames, allocs, "rss_kb", lambda v: f"{v / 1024:.1f} MiB")
        md += ["## Peak RSS", "", f"Median peak resident set size (ratio to {REF}).", "", t, ""]
        t, _ = table_metric(summary, wnames, allocs, "minflt", lambda v: f"{v:.0f}" if v < 10000 else f"{v / 1000:.0f}k")
        md += ["## Page faults", "", f"Median minor page faults (ratio to {REF}): each is a page touched for the "
               "first time, or touched again after the allocator gave it back to the system.", "", t, ""]
        live_rows = [w for w in wnames if any("peak_live" in summary[w].get(a, {}) for a in allocs)]
        for w in live_rows:
            live = max(summary[w][a]["peak_live"] for a in allocs if "peak_live" in summary[w].get(a, {}))
            md += [f"### {w}: peak RSS / peak live bytes", "",
                   f"Peak live bytes (requested sizes): {live / 1048576:.1f} MiB.", "",
                   "| " + " | ".join(allocs) + " |", "|" + " --- |" * len(allocs),
                   "| " + " | ".join(f"{summary[w][a]['rss_kb'] * 1024 / live:.2f}x"
                                     if "rss_kb" in summary[w].get(a, {}) else "-" for a in allocs) + " |", ""]
        fails = [(w, a, summary[w][a]) for w in wnames for a in allocs if summary[w].get(a, {}).get("fail")]
        if fails:
            md += ["## Failures", ""]
            for w, a, s in fails:
                tail = " / ".join(s.get("err_tail", [])) or "no output on stderr"
                md.append(f"- {w} under {a}: {s['fail']} in {s['failed']} of {s['runs']} runs: `{tail}`")
            md.append("")
        md += ["## Workloads", ""]
        for w in workloads:
            if own_suite:
                md.append(f"- **{w['name']}**: {w['desc']}")
            else:  # another suite: say exactly what ran
                argv = " ".join(Path(str(c)).name if str(c).startswith("/") else str(c) for c in w["cmd"])
                stdin = f" < {Path(w['stdin']).name}" if w.get("stdin") else ""
                md.append(f"- **{w['name']}**: `{argv}{stdin}`: {w.get('desc', '')}")
        md.append("")
    if cg:
        md += ["## Instructions per operation (callgrind)", "",
               callgrind_markdown(cg, allocs), "",
               CALLGRIND_METHOD.format(n=OPS_N).rstrip(), ""]
    if summary:
        md.append(METHOD.format(tinymalloc=tiny, ref=REF) + (SELF_CHECK if own_suite else ""))
    if own_suite:
        md.append(RUNNING)
    Path(out_md).parent.mkdir(parents=True, exist_ok=True)
    Path(out_md).write_text("\n".join(md).rstrip() + "\n")
    log(f"run.py: wrote {out_md}")


def write_detect_section(doc, plot, workloads, summary, allocs, meta, cg=None):
    """The cost table of docs/detect.md: replaces what is between its markers
    (or is appended with a heading when the page has none yet)."""
    wnames = [w["name"] for w in workloads]
    tiny = f"the override library built from commit {meta['commit']}" + \
        (" with uncommitted changes in src/" if meta["dirty"] else "")
    md = [DETECT_BEGIN, "",
          f"Generated by `{meta['command']}` on {meta['date']}, repository commit {meta['commit']}.", "",
          f"- Machine: {meta['machine']}.",
          f"- Columns: tinymalloc: {tiny}, normal mode; " + "; ".join(meta["versions"]) + ".",
          f"- Runs: {meta['runs']} per workload and column, alternating (run 1 goes "
          f"{', '.join(allocs)}, run 2 starts one further along); after a failed run a cell is not run "
          f"again. Load average {meta['load_start']} at the start, {meta['load_end']} at the end "
          f"(timing took {meta['minutes']:.1f} min).", "",
          f"![time and peak RSS relative to tinymalloc]({os.path.relpath(plot, Path(doc).parent)})", ""]
    for key, what, fmt in (("wall", "Median wall time in seconds", lambda v: f"{v:.2f} s"),
                           ("cpu", "Median user + system time in seconds", lambda v: f"{v:.2f} s"),
                           ("rss_kb", "Median peak RSS", lambda v: f"{v / 1024:.1f} MiB")):
        t, _ = table_metric(summary, wnames, allocs, key, fmt, base_names=(REF,))
        md += [f"{what} (ratio to tinymalloc's normal mode); a failed cell names the failure; "
               f"geometric means over the workloads where both have a result.", "", t, ""]
    fails = [(w, a, summary[w][a]) for w in wnames for a in allocs if summary[w].get(a, {}).get("fail")]
    if fails:
        md += ["Failures (the last lines the program wrote on stderr):", ""]
        for w, a, s in fails:
            tail = " / ".join(s.get("err_tail", [])) or "no output on stderr"
            md.append(f"- {w} under {a}: {s['fail']}: `{tail[:300]}`")
        md.append("")
    if cg:
        md += ["Instructions per operation under callgrind (ratio to tinymalloc's normal mode): counts, not "
               "time, so the machine's load does not change them. Only the preloaded columns: ASan's are other "
               "programs, which Valgrind cannot run, and libdislocator keeps a mapping per operation. The "
               "method is that of docs/benchmarks.md. One distortion: the mode fills a freed medium block "
               "with libc's `memset`, whose `rep stosb` Valgrind counts as one instruction per byte, so the "
               "medium pair's figure overstates the fill (about 41,000 of its instructions are that "
               "`memset` of 40 KiB); the small pairs have no `memset`.", "",
               callgrind_markdown(cg, allocs), ""]
    md.append(DETECT_END)
    section = "\n".join(md)
    doc = Path(doc)
    text = doc.read_text() if doc.exists() else "# Detection mode\n"
    if DETECT_BEGIN in text and DETECT_END in text:
        head, rest = text.split(DETECT_BEGIN, 1)
        text = head + section + rest.split(DETECT_END, 1)[1]
    else:
        text = text.rstrip() + "\n\n## Cost\n\n" + section + "\n"
    doc.write_text(text)
    log(f"run.py: wrote the cost table into {doc}")


def print_summary(summary, workloads, allocs):
    if not summary:
        return
    wnames = [w["name"] for w in workloads]
    for key, label in (("wall", "wall time"), ("rss_kb", "peak RSS")):
        _, ratios = table_metric(summary, wnames, allocs, key, str)
        for b in (REF, "mimalloc"):
            if b in allocs:
                log(f"geomean {label} vs {b}: " + ", ".join(f"{a} {fmt_ratio(geomean(ratios[b][a]))}" for a in allocs))


_lock = None


def lock_runner():
    """One runner at a time in a checkout: two would measure each other."""
    global _lock
    BUILD.mkdir(parents=True, exist_ok=True)
    _lock = open(BUILD / "run.lock", "a+")
    try:
        fcntl.flock(_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        _lock.seek(0)
        log(f"run.py: another bench/run.py is running here ({_lock.read().strip() or '?'}); waiting for it")
        fcntl.flock(_lock, fcntl.LOCK_EX)
    _lock.seek(0)
    _lock.truncate()
    _lock.write(f"pid {os.getpid()}, started {time.strftime('%H:%M:%S')}\n")
    _lock.flush()
    atexit.register(lambda: shutil.rmtree(BUILD / "tmp" / str(os.getpid()), ignore_errors=True))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="runs per workload and allocator (default 5)")
    ap.add_argument("--quick", action="store_true", help="one run each (a smoke pass)")
    ap.add_argument("--only", help="comma-separated workloads (exact names, else substrings); also filters "
                                   "the callgrind operations (small, xthread, medium, calloc, realloc)")
    ap.add_argument("--alloc", help="comma-separated allocators (default: " + ",".join(ALLOCATORS) + ")")
    ap.add_argument("--lib", help="tinymalloc override library to use instead of building one")
    ap.add_argument("--lib-label", help="how the report names that library (e.g. a commit)")
    ap.add_argument("--no-callgrind", action="store_true", help="skip the instruction counts")
    ap.add_argument("--callgrind-only", action="store_true", help="only the instruction counts")
    ap.add_argument("--suite", help="JSON file describing another suite (see docs/benchmarks.md)")
    ap.add_argument("--out", help="markdown report (default docs/benchmarks.md, or build/bench/results.md "
                                  "for a partial run)")
    ap.add_argument("--plot", help="SVG plot (default: beside the report)")
    ap.add_argument("--notes", help="markdown file whose text goes into the report")
    ap.add_argument("--timeout", type=int, default=300, help="seconds before a run is killed (default 300)")
    ap.add_argument("--nice", type=int, default=0, help="run the workloads at this nice level (default 0)")
    ap.add_argument("--jobs", type=int, default=2, help="build jobs (default 2)")
    ap.add_argument("--no-install", action="store_true", help="never call apt-get")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite the report and plot from the last run's saved results (e.g. with other "
                         "--notes); with --suite, from the last --suite run")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=BASE[+VAR=VALUE]...[+cflags:FLAGS]",
                    help="one more column, run after the --alloc ones: BASE is an allocator of the list above "
                         "(its library is preloaded) or the path of a library to preload; VAR=VALUE goes into "
                         "the environment of each run; cflags: rebuilds the suite's own programs with FLAGS "
                         "added (other programs are not run for it); no instruction counts. Repeatable. "
                         "E.g. detect=tinymalloc+TINYMALLOC_DETECT=1, dislocator=/usr/lib/afl/libdislocator.so, "
                         "asan=glibc+cflags:-fsanitize=address+ASAN_OPTIONS=detect_leaks=0")
    ap.add_argument("--detect", action="store_true",
                    help="the detection mode's cost: tinymalloc, and as variants " + ", ".join(DETECT_VARIANTS) +
                         " (afl++ is installed for libdislocator when missing); ratios to tinymalloc; no "
                         "instruction counts; the tables go into " + DETECT_DOC + " between its markers, "
                         "the full report into build/bench/detect-cost.md")
    args = ap.parse_args()
    if args.detect:
        global REF
        REF = "tinymalloc"
        if args.suite:
            die("--detect runs the suite's own workloads: no --suite")
    if args.report_only:
        last = json.loads((BUILD / ("last-run-suite.json" if args.suite else "last-run.json")).read_text())
        for k in ("lib", "lib_label"):
            if getattr(args, k) is None:
                setattr(args, k, last["args"].get(k))
        out_md = Path(args.out or last["out_md"])
        plot = Path(args.plot or last["plot"])
        summary = summarize(last["results"]) if last["results"] else {}
        if summary:
            write_svg(plot, last["title"], summary, [w["name"] for w in last["workloads"]], last["allocs"],
                      last["runs_note"])
        write_report(args, out_md, plot, last["title"], last["intro"], last["workloads"], summary,
                     last["cg"], {a: None for a in last["allocs"]}, last["meta"], last["own_suite"])
        if args.detect and summary:
            write_detect_section(ROOT / DETECT_DOC, plot, last["workloads"], summary, last["allocs"], last["meta"])
        return 0
    lock_runner()
    runs = 1 if args.quick else args.runs
    if runs < 1:
        die("--runs must be at least 1")

    suite = None
    if args.suite:
        suite = json.loads(Path(args.suite).read_text())
    wanted = [a.strip() for a in (args.alloc or ",".join(ALLOCATORS)).split(",") if a.strip()]
    for a in wanted:
        if a not in ALLOCATORS:
            die(f"unknown allocator {a!r} (known: {', '.join(ALLOCATORS)})")
    if args.detect:
        wanted = ["tinymalloc"]
        if not DISLOCATOR.exists() and not args.no_install:
            apt_install(["afl++"], "AFL++'s libdislocator")
        for text in DETECT_VARIANTS:
            if text.startswith("dislocator=") and not DISLOCATOR.exists():
                log(f"run.py: {DISLOCATOR} missing (Debian package afl++): no dislocator column")
                continue
            args.variant.insert(len(args.variant), text)
    for text in args.variant:
        name, v = parse_variant(text)
        VARIANTS[name] = v

    tools = {"gcc": "gcc", "cmake": "cmake", "ninja": "ninja-build"}
    missing = [pkg for tool, pkg in tools.items() if shutil.which(tool) is None and (tool == "gcc" or not args.lib)]
    if missing and not args.no_install:
        apt_install(missing, "build tools")
    if args.lib:
        tinylib = Path(args.lib).resolve()
        if not tinylib.exists():
            die(f"{tinylib} does not exist")
    elif "tinymalloc" in wanted or any(v["base"] == "tinymalloc" for v in VARIANTS.values()):
        tinylib = build_tinymalloc(args.jobs)
    else:
        tinylib = None
    build_programs()
    libs = setup_allocators(wanted, tinylib, install=not args.no_install)
    for name, v in VARIANTS.items():
        if v["base"] in ALLOCATORS:
            base_lib = setup_allocators([v["base"]], tinylib, install=not args.no_install)
            if v["base"] not in base_lib:
                die(f"--variant {name}: {v['base']} is not available")
            libs[name] = base_lib[v["base"]]
        else:
            libs[name] = Path(v["base"]).resolve()
        if v["cflags"]:
            v["bin"] = build_variant_programs(name, v["cflags"])

    if args.detect:
        workloads = own_workloads()
        title = "tinymalloc detection mode: cost"
        intro = ("The suite of issue 10 (`bench/`) with tinymalloc in its normal mode, tinymalloc with "
                 "`TINYMALLOC_DETECT=1`, ASan builds of the workloads (no preload) and AFL++'s libdislocator; "
                 "ratios to tinymalloc's normal mode. docs/detect.md explains the columns.")
        default_out = BUILD / "detect-cost.md"
        do_callgrind = not args.no_callgrind
    elif suite:
        workloads = suite["workloads"]
        title = suite.get("title", "Benchmarks")
        intro = suite.get("intro", "")
        default_out = ROOT / suite.get("out", "build/bench/suite.md")
        do_callgrind = False
    else:
        workloads = own_workloads()
        title = "tinymalloc benchmarks"
        intro = ("The suite of issue 10, run by `bench/run.py` (workloads in `bench/`, written for tinymalloc). "
                 "Lower is better everywhere.")
        default_out = ROOT / "docs" / "benchmarks.md"
        do_callgrind = not args.no_callgrind
    workloads = select(workloads, args.only, lambda w: w["name"])
    kinds = select(OPS, args.only, lambda k: k[0]) if do_callgrind else []
    if args.callgrind_only:
        workloads = []
    partial = bool(args.only or args.alloc or args.no_callgrind or args.callgrind_only or VARIANTS)
    out_md = Path(args.out) if args.out else (BUILD / "results.md" if partial and not suite and not args.detect
                                              else default_out)
    if args.plot:
        plot = Path(args.plot)
    elif args.detect:
        plot = ROOT / "docs" / "detect-cost.svg"
    elif suite and not args.out:
        plot = ROOT / suite.get("plot", "build/bench/suite.svg")
    elif out_md.resolve() == (ROOT / "docs" / "benchmarks.md").resolve():
        plot = ROOT / "docs" / "benchmarks-suite.svg"
    else:
        plot = out_md.with_suffix(".svg")
    if not workloads and not kinds:
        die("nothing selected")

    command = "bench/run.py" + "".join(" " + shlex.quote(a) for a in sys.argv[1:])
    meta = {"command": command, "commit": git("rev-parse", "--short", "HEAD") or "?",
            "dirty": bool(git("status", "--porcelain", "--", "src", "include", "CMakeLists.txt", "cmake")),
            "date": f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}", "machine": machine_info(),
            "versions": allocator_versions(libs)}
    summary, results = {}, {}
    if workloads:
        meta["load_start"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
        t0 = time.monotonic()
        log(f"run.py: {len(workloads)} workloads x {len(libs)} allocators x {runs} runs")
        results = run_timing(workloads, libs, runs, args.timeout, args.nice)
        meta.update(runs=runs, minutes=(time.monotonic() - t0) / 60,
                    load_end=" ".join(f"{x:.1f}" for x in os.getloadavg()))
        summary = summarize(results)
        BUILD.mkdir(parents=True, exist_ok=True)
        (BUILD / "results.json").write_text(json.dumps({"results": results, "summary": summary}, indent=1))
    cg = {}
    if kinds:
        # The preloaded columns (variants too, with their environment), not those of programs built
        # with other flags (ASan's: Valgrind cannot run them) or an address-space limit
        # (libdislocator, which never gives a freed block's pages back: a mapping per operation).
        cg_libs = {a: lib for a, lib in libs.items()
                   if a not in VARIANTS or (not VARIANTS[a]["cflags"] and VARIANTS[a]["as_mb"] is None)}
        cg = run_callgrind(cg_libs, kinds, {a: VARIANTS[a]["env"] for a in cg_libs if a in VARIANTS})
        (BUILD / "callgrind.json").write_text(json.dumps(cg, indent=1))
    runs_note = f"median of {runs} run{'s' if runs > 1 else ''}; log scale; shorter is better"
    if summary:
        write_svg(plot, title, summary, [w["name"] for w in workloads], list(libs), runs_note)
        log(f"run.py: wrote {plot}")
    BUILD.mkdir(parents=True, exist_ok=True)
    (BUILD / ("last-run-suite.json" if suite else "last-run.json")).write_text(json.dumps(
        {"args": {"lib": args.lib, "lib_label": args.lib_label}, "out_md": str(out_md), "plot": str(plot),
         "title": title, "intro": intro, "workloads": workloads, "results": results, "cg": cg,
         "allocs": list(libs), "meta": meta, "runs_note": runs_note, "own_suite": not suite}, indent=1))
    write_report(args, out_md, plot, title, intro, workloads, summary, cg, libs, meta, own_suite=not suite)
    if args.detect and summary:
        doc = ROOT / DETECT_DOC
        if args.only:
            log(f"run.py: --only: {doc} left alone (the cost table is the whole suite's); see {out_md}")
        else:
            write_detect_section(doc, plot, workloads, summary, list(libs), meta, cg)
    print_summary(summary, workloads, list(libs))
    if cg:
        log(callgrind_markdown(cg, list(libs)))
    failed = [(w, a) for w in summary for a in summary[w] if summary[w][a].get("fail")]
    if failed:
        log("run.py: failures: " + ", ".join(f"{w} under {a}" for w, a in failed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
