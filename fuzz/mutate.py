#!/usr/bin/env python3
"""fuzz/mutate.py: mutation testing of the fuzz harnesses against src/.

Makes random, seeded mutants of whatever core is checked out (src/*.c and
src/*.h, without the malloc symbols of override.c and the sanitizer hook
layer track.c/track.h): a relational or arithmetic operator swapped, a
logical operator swapped, an integer constant off by one, a statement
dropped, a memory order weakened or changed. Each mutant is built in a
scratch copy (the core once per flavour, then only the mutated file, or
everything when a header changed) and hunted:

  1. the plain replay of the committed corpus of every harness, then
     fuzz/lifecycle_test (calls before initialisation, options from the
     environment, fork from a signal handler, cancellation);
  2. for a changed memory order, the TSan replay of corpus/threads and corpus/ops;
  3. libFuzzer (ASan+UBSan) for --fuzz-time seconds per harness from the corpus;
  4. for any other survivor, the TSan replay (a dropped lock is a data race).

A mutant is KILLED when any of them fails (a failed check, a sanitizer
report, a crash, a hang), SURVIVED when none does, STILLBORN when it does not
compile or its build hangs. The report lists the survivors with their diff;
whether a survivor is equivalent (no behaviour can tell it from the
original) is for a person to judge.

Usage: fuzz/mutate.py [--count N] [--seed S] [--fuzz-time SEC] [--jobs J]
                      [--harness NAME]... [--out DIR] [--list] [--range A:B]
                      [--core-from REV] [--sample-from REV] [--only M,N,...]
Nothing outside --out (default build/fuzz-mutants) is written; src/ is read
once, at the start (a snapshot), and never changed.
"""
import argparse
import concurrent.futures
import difflib
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HARNESSES = ["ops", "threads", "misuse", "fork"]
SKIP_FILES = {"override.c", "track.c", "track.h"}
MAX_LEN = {"threads": 2048}

CORE_FLAGS = ["-std=c11", "-D_GNU_SOURCE", "-fvisibility=hidden", "-fno-builtin-malloc", "-fno-builtin-calloc",
              "-fno-builtin-realloc", "-fno-builtin-free", "-ftls-model=initial-exec", "-g1", "-O1", "-w"]
SAN = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
FLAVOURS = {
    # flavour: (extra core flags, extra harness flags, link flags, driver sources)
    "plain": ([], [], [], ["replay_main"]),
    "tsan": (["-fsanitize=thread"], ["-fsanitize=thread"], ["-fsanitize=thread"], ["replay_main"]),
    "libfuzzer": (["-fsanitize=fuzzer-no-link"] + SAN + ["-DTM_TRACK_ASAN=1"], SAN + ["-DTMF_TRACKED_CORE=1"],
                  ["-fsanitize=fuzzer"] + SAN, ["libfuzzer_main", "libfuzzer_mutator"]),
}
SUPPORT = ["common", "shadow", "grammar", "mutator", "ops"]


def log(msg):
    print("[mutate %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


# ---- Finding mutation sites --------------------------------------------------

def blank_comments_and_strings(text):
    """The text with comments, string and character literals and preprocessor
    lines replaced by spaces (offsets and newlines kept)."""
    out = list(text)
    i, n = 0, len(text)
    line_start = True
    while i < n:
        c = text[i]
        if line_start and c == "#":  # a preprocessor line (with continuations)
            j = i
            while j < n and not (text[j] == "\n" and text[j - 1] != "\\"):
                j += 1
            for k in range(i, j):
                if out[k] != "\n":
                    out[k] = " "
            i = j
            continue
        if c == "\n":
            line_start = True
            i += 1
            continue
        if not c.isspace():
            line_start = False
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
        else:
            i += 1
            continue
        for k in range(i, j):
            if out[k] != "\n":
                out[k] = " "
        i = j
    return "".join(out)


REL = {"<": ["<=", ">"], "<=": ["<", ">="], ">": [">=", "<"], ">=": [">", "<="], "==": ["!="], "!=": ["=="]}
ARITH = {"+": ["-"], "-": ["+"], "+=": ["-="], "-=": ["+="], "<<": [">>"], ">>": ["<<"], "&": ["|"], "|": ["&"],
         "^": ["|"], "*": ["/"], "/": ["*"], "%": ["/"]}
LOGIC = {"&&": ["||"], "||": ["&&"]}
ORDER_SWAPS = {"memory_order_acquire": ["memory_order_relaxed"], "memory_order_release": ["memory_order_relaxed"],
               "memory_order_acq_rel": ["memory_order_relaxed", "memory_order_acquire", "memory_order_release"],
               "memory_order_seq_cst": ["memory_order_relaxed", "memory_order_acq_rel"]}
OPERATOR = re.compile(r"<<=|>>=|\+\+|--|->|&&|\|\||<<|>>|<=|>=|==|!=|\+=|-=|\*=|/=|%=|&=|\|=|\^=|[-+*/%&|^<>=!~?:]")
NUMBER = re.compile(r"(?<![\w.])(0[xX][0-9a-fA-F]+|\d+)([uUlL]*)(?![\w.])")
# The token before a binary operator: an operand's end.
OPERAND_END = re.compile(r"[\w)\]]\s*$")
STATEMENT = re.compile(r"^(\s*)(?:[A-Za-z_][\w.\[\]>-]*\s*(?:=(?!=)|\+=|-=|\|=|&=|\^=|<<=|>>=|\+\+|--)"
                       r"|[A-Za-z_]\w*\s*\(|(?:\+\+|--)[A-Za-z_]).*;\s*$")
DECLARATION = re.compile(r"^\s*(?:const\s+|static\s+|volatile\s+|unsigned\s+|struct\s+|enum\s+|_Atomic\s*\(?)*"
                         r"[A-Za-z_]\w*\s*\)?\s*\**\s*[A-Za-z_]\w*\s*(?:=|;|\[)")
KEYWORDS = {"return", "if", "for", "while", "switch", "case", "goto", "break", "continue", "do", "else", "sizeof",
            "_Static_assert", "default"}


def sites_in(path, rel):
    text = open(path).read()
    code = blank_comments_and_strings(text)
    lines = text.split("\n")
    code_lines = code.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    sites = []

    def line_of(pos):
        lo, hi = 0, len(offsets) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if offsets[mid] <= pos:
                lo = mid
            else:
                hi = mid - 1
        return lo

    depth = 0  # brace depth: operators only inside function bodies and initialisers
    depth_at = []
    for ch in code:
        depth_at.append(depth)
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
    for m in OPERATOR.finditer(code):
        op, pos = m.group(0), m.start()
        if depth_at[pos] == 0:
            continue
        before = code[max(0, pos - 40):pos]
        if op in REL or op in ARITH or op in LOGIC:
            if op in ("*", "&", "-", "+") and not OPERAND_END.search(before):
                continue  # unary: a dereference, an address, a sign
            if op == "*" and re.search(r"\b(?:[a-z_]+_t|int|char|void|long|unsigned|short|float|double|struct\s+\w+)\s*$",
                                       before):
                continue  # a pointer type in a cast or declaration
            if op in ("<", ">") and re.search(r"\b(?:include)\s*$", before):
                continue
            table = REL if op in REL else ARITH if op in ARITH else LOGIC
            kind = "relational" if op in REL else "arithmetic" if op in ARITH else "logical"
            for new in table[op]:
                sites.append((rel, line_of(pos), pos, op, new, kind))
    for m in NUMBER.finditer(code):
        if depth_at[m.start()] == 0:
            continue
        value = int(m.group(1), 0)
        for new in ([value + 1, value - 1] if value > 0 else [1]):
            lit = (hex(new) if m.group(1).lower().startswith("0x") else str(new)) + m.group(2)
            sites.append((rel, line_of(m.start()), m.start(), m.group(0), lit, "constant"))
    for m in re.finditer(r"\bmemory_order_\w+\b", code):
        for new in ORDER_SWAPS.get(m.group(0), []):
            sites.append((rel, line_of(m.start()), m.start(), m.group(0), new, "memory order"))
    for i, line in enumerate(code_lines):
        if not line.strip() or depth_at[offsets[i]] == 0 or not STATEMENT.match(line):
            continue
        first = line.split()[0].split("(")[0]
        if first in KEYWORDS or DECLARATION.match(line) or line.count("(") != line.count(")"):
            continue
        sites.append((rel, i, offsets[i], lines[i], "", "dropped statement"))
    return sites


def carry_site(site, sample_root, target_root):
    """The same mutation on another version of the core: the sampled line
    (same text, nearest to its old place) in the same file of target_root,
    the operator or constant at the same column. None when that line is gone."""
    rel, line, pos, old, new, kind = site
    old_lines = open(os.path.join(sample_root, rel)).read().split("\n")
    target = os.path.join(target_root, rel)
    if not os.path.exists(target):
        return None
    lines = open(target).read().split("\n")
    text = old_lines[line]
    matches = [i for i, l in enumerate(lines) if l == text]
    if not matches:
        return None
    i = min(matches, key=lambda k: abs(k - line))
    offsets = [0]
    for l in lines:
        offsets.append(offsets[-1] + len(l) + 1)
    column = pos - sum(len(l) + 1 for l in old_lines[:line])
    return (rel, i, offsets[i] + column, old, new, kind)


def apply_site(text, site):
    rel, line, pos, old, new, kind = site
    if kind == "dropped statement":
        lines = text.split("\n")
        indent = re.match(r"\s*", lines[line]).group(0)
        lines[line] = indent + "; /* mutant: statement dropped */"
        return "\n".join(lines)
    assert text[pos:pos + len(old)] == old, (site, text[pos:pos + len(old)])
    return text[:pos] + new + text[pos + len(old):]


# ---- Building ---------------------------------------------------------------------

class Builder:
    def __init__(self, out, snapshot, jobs):
        self.out, self.snapshot, self.jobs = out, snapshot, jobs
        self.lock = threading.Lock()
        self.pristine_done = set()
        self.core = sorted(f for f in os.listdir(os.path.join(snapshot, "src"))
                           if f.endswith(".c") and f != "override.c")

    def cc(self, args, timeout=180):
        return subprocess.run(["clang"] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)

    def compile_many(self, jobs, timeout):
        """jobs: list of argument lists; returns (ok, log)."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=self.jobs) as ex:
            results = list(ex.map(lambda a: self.cc(a, timeout), jobs))
        bad = [r for r in results if r.returncode != 0]
        return not bad, b"".join(r.stdout for r in bad).decode(errors="replace")

    def pristine(self, flavour):
        with self.lock:
            if flavour in self.pristine_done:
                return
            core_x, harn_x, _, drivers = FLAVOURS[flavour]
            d = os.path.join(self.out, "pristine-" + flavour)
            os.makedirs(os.path.join(d, "core"), exist_ok=True)
            os.makedirs(os.path.join(d, "fuzz"), exist_ok=True)
            jobs = [CORE_FLAGS + core_x + ["-I", os.path.join(self.snapshot, "include"), "-I",
                                            os.path.join(self.snapshot, "src"), "-c",
                                            os.path.join(self.snapshot, "src", f), "-o",
                                            os.path.join(d, "core", f[:-2] + ".o")] for f in self.core]
            harness = SUPPORT + drivers + ["harness_" + h for h in HARNESSES]
            if flavour == "plain":
                harness.append("lifecycle_test")
            jobs += [["-std=c11", "-D_GNU_SOURCE", "-g1", "-O1"] + harn_x +
                     ["-I", os.path.join(ROOT, "include"), "-I", os.path.join(ROOT, "fuzz"), "-c",
                      os.path.join(ROOT, "fuzz", f + ".c"), "-o", os.path.join(d, "fuzz", f + ".o")] for f in harness]
            ok, text = self.compile_many(jobs, 300)
            if not ok:
                raise SystemExit("mutate: the unmutated core does not build (%s):\n%s" % (flavour, text[:3000]))
            self.pristine_done.add(flavour)

    def check_pristine(self, harnesses, with_libfuzzer):
        """Replays every corpus input on the unmutated core: an input that
        already fails there (a bug of the core, not of a mutant) is left out
        of the hunt, and named."""
        d = os.path.join(self.out, "pristine-bin")
        os.makedirs(d, exist_ok=True)
        flavours = ["plain"] + (["libfuzzer"] if with_libfuzzer else [])
        for flavour in flavours:
            ok, text = self.build(self.snapshot, "", flavour, harnesses, d)
            if not ok:
                raise SystemExit("mutate: the unmutated core does not link (%s):\n%s" % (flavour, text[:3000]))
        self.bin = d
        rc, out = run([os.path.join(d, "plain-lifecycle")], 300)
        if rc != 0:
            raise SystemExit("mutate: lifecycle_test fails on the unmutated core:\n%s" % out[-2000:])
        self.healthy_inputs, self.sick_inputs = {}, {}
        for h in harnesses:
            files = sorted(os.path.join(ROOT, "corpus", h, f) for f in os.listdir(os.path.join(ROOT, "corpus", h)))
            rc, out = run([os.path.join(d, "plain-" + h)] + files, 300)
            healthy = files
            if rc != 0:
                healthy = []
                for f in files:
                    if run([os.path.join(d, "plain-" + h), f], 120)[0] == 0:
                        healthy.append(f)
            sick = [f for f in files if f not in healthy]
            for f in sick:
                log("corpus/%s/%s fails on the unmutated core: left out (%s)" % (
                    h, os.path.basename(f), first_report(run([os.path.join(d, "plain-" + h), f], 120)[1])))
            self.healthy_inputs[h], self.sick_inputs[h] = healthy, sick

    def pristine_fails(self, h, path):
        return run([os.path.join(self.bin, "libfuzzer-" + h), path], 120)[0] != 0

    def build(self, tree, changed, flavour, harnesses, outdir):
        """Builds the harness binaries of a flavour from the pristine objects
        and the recompiled files of the mutated tree. Returns (ok, log)."""
        self.pristine(flavour)
        core_x, _, link_x, drivers = FLAVOURS[flavour]
        pdir = os.path.join(self.out, "pristine-" + flavour)
        objdir = os.path.join(outdir, "obj-" + flavour)
        os.makedirs(objdir, exist_ok=True)
        recompile = self.core if changed.endswith(".h") else [os.path.basename(changed)]
        if not changed.endswith(".h") and os.path.basename(changed) not in self.core:
            recompile = []  # nothing changed (the unmutated core), or a file outside the build
        jobs = [CORE_FLAGS + core_x + ["-I", os.path.join(tree, "include"), "-I", os.path.join(tree, "src"), "-c",
                                        os.path.join(tree, "src", f), "-o", os.path.join(objdir, f[:-2] + ".o")]
                for f in recompile]
        ok, text = self.compile_many(jobs, 120)
        if not ok:
            return False, text
        objs = [os.path.join(objdir if f in recompile else os.path.join(pdir, "core"), f[:-2] + ".o")
                for f in self.core]
        links = []
        for h in harnesses:
            support = [os.path.join(pdir, "fuzz", f + ".o") for f in SUPPORT + drivers + ["harness_" + h]]
            links.append(link_x + support + objs + ["-lpthread", "-o", os.path.join(outdir, "%s-%s" % (flavour, h))])
        if flavour == "plain":  # what no harness can drive: calls before initialisation, options from the environment
            links.append([os.path.join(pdir, "fuzz", "lifecycle_test.o")] + objs +
                         ["-lpthread", "-o", os.path.join(outdir, "plain-lifecycle")])
        return self.compile_many(links, 120)


# ---- Hunting ------------------------------------------------------------------------

def first_report(text):
    for pattern in (r"tinymalloc-fuzz: (?!.*while replaying).*", r"WARNING: ThreadSanitizer.*",
                    r"ERROR: (?:AddressSanitizer|UndefinedBehaviorSanitizer|libFuzzer).*", r"runtime error.*",
                    r"tinymalloc.*"):
        m = re.search(pattern, text)
        if m:
            return m.group(0)[:160]
    return text.strip().splitlines()[-1][:160] if text.strip() else "(no output)"


def run(cmd, timeout, env=None):
    e = dict(os.environ)
    e.update(env or {})
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, env=e)
        return r.returncode, r.stdout.decode(errors="replace")
    except subprocess.TimeoutExpired as t:
        return -1, (t.stdout or b"").decode(errors="replace") + "\n(timed out after %ss)" % timeout


def hunt(builder, args, index, site, snapshot):
    rel, line, pos, old, new, kind = site
    d = os.path.join(args.out, "m%03d" % index)
    shutil.rmtree(d, ignore_errors=True)
    tree = os.path.join(d, "tree")
    shutil.copytree(os.path.join(snapshot, "src"), os.path.join(tree, "src"))
    shutil.copytree(os.path.join(snapshot, "include"), os.path.join(tree, "include"))
    path = os.path.join(tree, rel)
    original = open(path).read()
    mutated = apply_site(original, site)
    open(path, "w").write(mutated)
    diff = "".join(difflib.unified_diff(original.splitlines(True), mutated.splitlines(True), "a/" + rel, "b/" + rel,
                                        n=1))
    result = {"index": index, "site": site, "diff": diff, "status": "survived", "by": "", "report": ""}
    t0 = time.time()
    try:
        ok, text = builder.build(tree, rel, "plain", args.harness, d)
    except subprocess.TimeoutExpired:
        ok, text = False, "build timed out"
    if not ok:
        result.update(status="stillborn", report=first_report(text) if text else "build failed")
        shutil.rmtree(d, ignore_errors=True)
        return result
    corpus = os.path.join(ROOT, "corpus")
    for h in args.harness:
        rc, out = run([os.path.join(d, "plain-" + h)] + builder.healthy_inputs[h], 180)
        if rc != 0:
            result.update(status="killed", by="%s corpus replay" % h, report=first_report(out))
            break
    if result["status"] == "survived":
        rc, out = run([os.path.join(d, "plain-lifecycle")], 300)
        if rc != 0:
            result.update(status="killed", by="lifecycle_test", report=first_report(out))
    if result["status"] == "survived" and kind == "memory order":
        try:
            ok, text = builder.build(tree, rel, "tsan", [h for h in ("threads", "ops") if h in args.harness], d)
        except subprocess.TimeoutExpired:
            ok = False
        for h in ([h for h in ("threads", "ops") if h in args.harness] if ok else []):
            rc, out = run([os.path.join(d, "tsan-" + h)] + builder.healthy_inputs[h], 300,
                          {"TSAN_OPTIONS": "halt_on_error=1"})
            if rc != 0:
                result.update(status="killed", by="%s TSan replay" % h, report=first_report(out))
                break
    if result["status"] == "survived" and args.fuzz_time > 0:
        try:
            ok, text = builder.build(tree, rel, "libfuzzer", args.harness, d)
        except subprocess.TimeoutExpired:
            ok, text = False, "build timed out"
        if not ok:
            result.update(status="stillborn", report="libFuzzer build: " + first_report(text))
        for h in (args.harness if ok else []):
            crashes = os.path.join(d, "crashes-" + h)
            seeds = os.path.join(d, "seeds-" + h)
            os.makedirs(crashes, exist_ok=True)
            shutil.copytree(os.path.join(corpus, h), seeds)
            for f in builder.sick_inputs[h]:
                os.remove(os.path.join(seeds, os.path.basename(f)))
            rc, out = run([os.path.join(d, "libfuzzer-" + h), "-max_total_time=%d" % args.fuzz_time,
                           "-max_len=%d" % MAX_LEN.get(h, 1024), "-dict=" + os.path.join(ROOT, "fuzz", h + ".dict"),
                           "-entropic_scale_per_exec_time=%d" % (h in ("ops", "misuse")), "-timeout=20",
                           "-rss_limit_mb=4096",
                           "-artifact_prefix=" + crashes + "/", seeds], args.fuzz_time + 120)
            if rc != 0:
                # Only a finding the unmutated core does not share kills.
                found = sorted(os.path.join(crashes, f) for f in os.listdir(crashes))
                found.sort(key=lambda f: not os.path.basename(f).startswith("window-"))
                if not found or builder.pristine_fails(h, found[0]):
                    continue
                result.update(status="killed", by="%s libFuzzer" % h, report=first_report(out))
                break
    if result["status"] == "survived" and kind != "memory order":
        # Last: the TSan replay for any survivor (a dropped lock or a racy
        # rewrite shows as a data race long before it corrupts anything).
        try:
            ok, text = builder.build(tree, rel, "tsan", [h for h in ("threads", "ops") if h in args.harness], d)
        except subprocess.TimeoutExpired:
            ok = False
        for h in ([h for h in ("threads", "ops") if h in args.harness] if ok else []):
            rc, out = run([os.path.join(d, "tsan-" + h)] + builder.healthy_inputs[h], 300,
                          {"TSAN_OPTIONS": "halt_on_error=1", "TMF_WATCHDOG_SECONDS": "60"})
            if rc != 0:
                result.update(status="killed", by="%s TSan replay" % h, report=first_report(out))
                break
    result["seconds"] = time.time() - t0
    if result["status"] != "survived" or not args.keep:
        shutil.rmtree(d, ignore_errors=True)
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--count", type=int, default=20, help="mutants to make (default 20)")
    ap.add_argument("--seed", type=int, default=1, help="random seed of the sample (default 1)")
    ap.add_argument("--fuzz-time", type=int, default=10, help="libFuzzer seconds per harness (default 10; 0: none)")
    ap.add_argument("--jobs", type=int, default=2, help="mutants hunted at once (default 2)")
    ap.add_argument("--harness", action="append", help="harnesses to use (default all)")
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "fuzz-mutants"), help="work directory")
    ap.add_argument("--keep", action="store_true", help="keep the trees and binaries of survivors")
    ap.add_argument("--list", action="store_true", help="only list the sampled mutants")
    ap.add_argument("--core-from", help="take src/ and include/ from commit REV, not the working tree")
    ap.add_argument("--sample-from", help="draw the sample (and its ids) from the core of commit REV, then hunt the "
                                          "same mutations on the core hunted (the same line text, nearest to its "
                                          "old place; a mutant whose line is gone is listed and skipped)")
    ap.add_argument("--only", help="M,N,...: hunt only these sample ids (e.g. 9,16,49)")
    ap.add_argument("--range", help="A:B: hunt only the sampled mutants A to B-1 (the sample is the same: split "
                                    "one sample across processes)")
    args = ap.parse_args()
    args.harness = args.harness or HARNESSES
    for h in args.harness:
        if h not in HARNESSES:
            ap.error("unknown harness %s" % h)
    os.makedirs(args.out, exist_ok=True)
    snapshot = os.path.join(args.out, "snapshot")
    shutil.rmtree(snapshot, ignore_errors=True)
    for p in list(os.listdir(args.out)):
        if p.startswith("pristine-") or re.match(r"m\d+$", p):
            shutil.rmtree(os.path.join(args.out, p), ignore_errors=True)
    if args.core_from:  # the core of a commit, not the working tree
        os.makedirs(snapshot)
        archive = subprocess.run(["git", "-C", ROOT, "archive", args.core_from, "src", "include"], check=True,
                                 stdout=subprocess.PIPE).stdout
        subprocess.run(["tar", "-x", "-C", snapshot], input=archive, check=True)
    else:
        shutil.copytree(os.path.join(ROOT, "src"), os.path.join(snapshot, "src"))
        shutil.copytree(os.path.join(ROOT, "include"), os.path.join(snapshot, "include"))

    sample_root = snapshot
    if args.sample_from:  # the ids of a sample drawn on an older core
        sample_root = os.path.join(args.out, "sample-core")
        shutil.rmtree(sample_root, ignore_errors=True)
        os.makedirs(sample_root)
        archive = subprocess.run(["git", "-C", ROOT, "archive", args.sample_from, "src", "include"], check=True,
                                 stdout=subprocess.PIPE).stdout
        subprocess.run(["tar", "-x", "-C", sample_root], input=archive, check=True)
    sites = []
    for f in sorted(os.listdir(os.path.join(sample_root, "src"))):
        if (f.endswith(".c") or f.endswith(".h")) and f not in SKIP_FILES:
            sites += sites_in(os.path.join(sample_root, "src", f), "src/" + f)
    kinds = sorted(set(s[5] for s in sites))
    rng = random.Random(args.seed)
    # The same number of candidates of each kind (a file of many constants
    # must not crowd out the rest), then a uniform pick among them.
    by_kind = {k: [s for s in sites if s[5] == k] for k in kinds}
    sample = []
    while len(sample) < args.count and any(by_kind.values()):
        kind = rng.choice([k for k in kinds if by_kind[k]])
        sample.append(by_kind[kind].pop(rng.randrange(len(by_kind[kind]))))
    log("%d mutation sites in %d files of src/ (%s); %d sampled with seed %d" % (
        len(sites), len(set(s[0] for s in sites)), ", ".join("%s %d" % (k, sum(1 for s in sites if s[5] == k))
                                                            for k in kinds), len(sample), args.seed))
    if args.sample_from:
        carried = []
        for i, site in enumerate(sample):
            c = carry_site(site, sample_root, snapshot)
            if c is None:
                log("m%03d %s:%d: the line is gone from the core hunted: skipped" % (i, site[0], site[1] + 1))
            elif c[1] != site[1]:
                log("m%03d %s:%d is line %d of the core hunted" % (i, site[0], site[1] + 1, c[1] + 1))
            carried.append(c)
        sample = carried
    if args.list:
        for i, s in enumerate(sample):
            if s is None:
                continue
            print("m%03d %s:%d %s: %r -> %r" % (i, s[0], s[1] + 1, s[5], s[3].strip(), s[4]))
        return 0

    builder = Builder(args.out, snapshot, max(1, args.jobs))
    t0 = time.time()
    builder.pristine("plain")
    log("pristine objects built (%.0fs)" % (time.time() - t0))
    builder.check_pristine(args.harness, args.fuzz_time > 0)
    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
        lo, hi = (int(x) for x in args.range.split(":")) if args.range else (0, len(sample))
        only = set(int(x) for x in args.only.split(",")) if args.only else None
        futures = {ex.submit(hunt, builder, args, i, s, snapshot): i for i, s in enumerate(sample)
                   if lo <= i < hi and s is not None and (only is None or i in only)}
        for fut in concurrent.futures.as_completed(futures):
            r = fut.result()
            s = r["site"]
            log("m%03d %-9s %s:%d %s %r -> %r  %s%s" % (r["index"], r["status"].upper(), s[0], s[1] + 1, s[5],
                                                       s[3].strip()[:40], s[4][:40],
                                                       ("by " + r["by"] + ": ") if r["by"] else "", r["report"][:100]))
            results.append(r)
    results.sort(key=lambda r: r["index"])
    killed = [r for r in results if r["status"] == "killed"]
    survived = [r for r in results if r["status"] == "survived"]
    stillborn = [r for r in results if r["status"] == "stillborn"]
    print("mutants   %d (seed %d, %d s of libFuzzer per harness, %.0f s in all)" % (
        len(results), args.seed, args.fuzz_time, time.time() - t0))
    print("killed    %d" % len(killed))
    print("survived  %d" % len(survived))
    print("stillborn %d" % len(stillborn))
    live = len(killed) + len(survived)
    print("score     %d / %d = %.0f%% (killed / (killed + survived))" % (
        len(killed), live, 100.0 * len(killed) / live if live else 0))
    print("\nkilled by:")
    for r in killed:
        s = r["site"]
        print("  m%03d %s:%d %s, by %s: %s" % (r["index"], s[0], s[1] + 1, s[5], r["by"], r["report"]))
    if stillborn:
        print("\nstillborn:")
        for r in stillborn:
            s = r["site"]
            print("  m%03d %s:%d %s: %s" % (r["index"], s[0], s[1] + 1, s[5], r["report"][:120]))
    if survived:
        print("\nsurvivors (judge each: equivalent, or a gap in the harnesses):")
        for r in survived:
            s = r["site"]
            print("  m%03d %s:%d %s" % (r["index"], s[0], s[1] + 1, s[5]))
            print("".join("      " + l for l in r["diff"].splitlines(True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
