#!/usr/bin/env python3
"""Syntax and consistency check of the files that only hosted services run
(ci/packaging-tests.sh calls it): oss-fuzz/project.yaml and Dockerfile,
.clusterfuzzlite/project.yaml and Dockerfile, .github/workflows/*.yml.
Every YAML file must parse; beyond that, what the services would reject or
what would silently not work here: unknown project.yaml values, a Dockerfile
that does not put the source and build.sh where build.sh expects them, a
workflow job without runs-on or steps, an action without a version, a
sanitizer matrix that does not match ci/sanitizers.sh or project.yaml.
Usage: check_service_files.py REPOSITORY_ROOT. Exit status 1 on any problem."""
import pathlib
import re
import sys

try:
    import yaml
except ImportError:
    sys.exit("check_service_files: needs PyYAML (Debian package python3-yaml)")

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
problems = []


def problem(path, message):
    problems.append(f"{path.relative_to(root)}: {message}")


def load_yaml(path):
    if not path.is_file():
        problem(path, "missing")
        return None
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        problem(path, f"not valid YAML: {e}")
        return None
    if not isinstance(data, dict):
        problem(path, "is not a mapping")
        return None
    return data


def dockerfile(path):
    """The instructions of a Dockerfile, continuation lines joined."""
    if not path.is_file():
        problem(path, "missing")
        return []
    text = re.sub(r"\\\n", " ", path.read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def check_builder_image(path, lines):
    if not lines or not re.fullmatch(r"FROM gcr\.io/oss-fuzz-base/base-builder(:\S+)?", lines[0]):
        problem(path, "must start FROM gcr.io/oss-fuzz-base/base-builder (a C project)")
    if not any(re.fullmatch(r"RUN .*apt-get install .*\bzip\b.*", line) for line in lines):
        problem(path, "does not install zip (the build makes seed corpus zips)")


# ---- OSS-Fuzz ----------------------------------------------------------------
SANITIZERS = {"address", "undefined", "memory"}
ENGINES = {"libfuzzer", "afl", "honggfuzz", "centipede"}
oss_dir = root / "oss-fuzz"
project = load_yaml(oss_dir / "project.yaml")
oss_sanitizers = set()
if project is not None:
    path = oss_dir / "project.yaml"
    for key in ("homepage", "language", "primary_contact", "main_repo"):
        if not isinstance(project.get(key), str) or not project[key]:
            problem(path, f"needs {key}")
    if project.get("language") != "c":
        problem(path, "language must be c")
    if "@" not in str(project.get("primary_contact", "")):
        problem(path, "primary_contact is not an e-mail address")
    oss_sanitizers = set(project.get("sanitizers") or [])
    if not oss_sanitizers <= SANITIZERS or not {"address", "undefined"} <= oss_sanitizers:
        problem(path, f"sanitizers {sorted(oss_sanitizers)}: address and undefined, from {sorted(SANITIZERS)}")
    engines = set(project.get("fuzzing_engines") or [])
    if not engines <= ENGINES or not {"libfuzzer", "afl"} <= engines:
        problem(path, f"fuzzing_engines {sorted(engines)}: libfuzzer and afl, from {sorted(ENGINES)}")
    if not set(project.get("architectures") or ["x86_64"]) <= {"x86_64", "i386", "aarch64"}:
        problem(path, "unknown architecture")

    path = oss_dir / "Dockerfile"
    lines = dockerfile(path)
    check_builder_image(path, lines)
    clone = f"RUN git clone --depth 1 {project.get('main_repo')} tinymalloc"
    if clone not in lines:
        problem(path, f"does not clone main_repo into $SRC/tinymalloc ({clone!r})")
    if "WORKDIR tinymalloc" not in lines and "WORKDIR $SRC/tinymalloc" not in lines:
        problem(path, "WORKDIR is not the checkout")
    if "COPY build.sh $SRC/" not in lines:
        problem(path, "does not COPY build.sh $SRC/")
if not (oss_dir / "build.sh").is_file():
    problem(oss_dir / "build.sh", "missing")

# ---- ClusterFuzzLite -----------------------------------------------------------
cfl_dir = root / ".clusterfuzzlite"
cfl = load_yaml(cfl_dir / "project.yaml")
if cfl is not None and cfl.get("language") != "c":
    problem(cfl_dir / "project.yaml", "language must be c")
path = cfl_dir / "Dockerfile"
lines = dockerfile(path)
check_builder_image(path, lines)
for needed in ("COPY . $SRC/tinymalloc", "WORKDIR $SRC/tinymalloc", "COPY .clusterfuzzlite/build.sh $SRC/"):
    if needed not in lines:
        problem(path, f"lacks {needed!r}")
if not (cfl_dir / "build.sh").is_file():
    problem(cfl_dir / "build.sh", "missing")

# ---- GitHub Actions ------------------------------------------------------------------
sanitizer_configs = set()
script = root / "ci" / "sanitizers.sh"
# Its default list: configs=(asan tsan memcheck)
match = re.search(r"configs=\(([a-z][a-z ]*)\)", script.read_text()) if script.is_file() else None
if match:
    sanitizer_configs = set(match.group(1).split())
workflows = sorted((root / ".github" / "workflows").glob("*.y*ml"))
if not workflows:
    problem(root / ".github" / "workflows", "no workflow")
seen_sanitizer_matrix = seen_cflite = False
for path in workflows:
    flow = load_yaml(path)
    if flow is None:
        continue
    text = path.read_text()
    if text.count("${{") != text.count("}}"):
        problem(path, "unbalanced ${{ }} expressions")
    triggers = flow.get("on", flow.get(True))  # YAML 1.1 reads a bare `on` as true
    if isinstance(triggers, str):
        triggers = {triggers: None}
    elif isinstance(triggers, list):
        triggers = dict.fromkeys(triggers)
    if not isinstance(triggers, dict) or "pull_request" not in triggers:
        problem(path, "does not run on pull_request")
    jobs = flow.get("jobs")
    if not isinstance(jobs, dict) or not jobs:
        problem(path, "has no jobs")
        continue
    for name, job in jobs.items():
        where = f"job {name}"
        if not isinstance(job, dict) or "runs-on" not in job or not isinstance(job.get("steps"), list):
            problem(path, f"{where} needs runs-on and a list of steps")
            continue
        matrix = (job.get("strategy") or {}).get("matrix") or {}
        uses = []
        for i, step in enumerate(job["steps"]):
            if not isinstance(step, dict) or ("uses" in step) == ("run" in step):
                problem(path, f"{where} step {i + 1} needs exactly one of uses and run")
                continue
            if "uses" in step:
                action = step["uses"]
                uses.append(action)
                if not re.fullmatch(r"[\w.-]+/[\w./-]+@[\w.-]+|docker://\S+|\./\S+", action):
                    problem(path, f"{where}: action {action!r} has no version (@ref)")
            else:
                for script_path in re.findall(r"\bci/[\w.-]+\.sh\b", step["run"]):
                    if not (root / script_path).is_file():
                        problem(path, f"{where} runs {script_path}, which does not exist")
                if "ci/sanitizers.sh" in step["run"]:
                    seen_sanitizer_matrix = True
                    configs = set(matrix.get("config") or [])
                    if configs != sanitizer_configs:
                        problem(path, f"{where}: matrix {sorted(configs)} is not ci/sanitizers.sh's "
                                      f"{sorted(sanitizer_configs)}")
        build = [s for s in job["steps"] if str(s.get("uses", "")).startswith("google/clusterfuzzlite/actions/")]
        if build:
            seen_cflite = True
            kinds = [s["uses"].split("/")[3].split("@")[0] for s in build]
            if kinds != ["build_fuzzers", "run_fuzzers"]:
                problem(path, f"{where}: ClusterFuzzLite steps are {kinds}, not build_fuzzers then run_fuzzers")
            sanitizers = set(matrix.get("sanitizer") or [])
            if oss_sanitizers and sanitizers != oss_sanitizers:
                problem(path, f"{where}: sanitizers {sorted(sanitizers)} differ from oss-fuzz/project.yaml's")
            for step in build:
                given = step.get("with") or {}
                if given.get("sanitizer") != "${{ matrix.sanitizer }}":
                    problem(path, f"{where}: {step['uses']} does not use the matrix sanitizer")
            if (build[0].get("with") or {}).get("language") != "c":
                problem(path, f"{where}: build_fuzzers language is not c")
            if (build[1].get("with") or {}).get("mode") != "code-change":
                problem(path, f"{where}: run_fuzzers is not in code-change mode")
            if job.get("if") != "github.event_name == 'pull_request'":
                problem(path, f"{where}: code-change fuzzing needs a pull request (if: ...)")
if not seen_sanitizer_matrix:
    problem(root / ".github" / "workflows", "no job runs ci/sanitizers.sh")
if not seen_cflite:
    problem(root / ".github" / "workflows", "no job runs ClusterFuzzLite")

for line in problems:
    print(f"check_service_files: {line}", file=sys.stderr)
print(f"check_service_files: {len(workflows) + 2} YAML files and 2 Dockerfiles checked, {len(problems)} problems")
sys.exit(1 if problems else 0)
