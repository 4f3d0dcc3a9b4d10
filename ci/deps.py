#!/usr/bin/env python3
"""ci/deps.py: the module dependency graph of the core, derived from the
object files (nm), not from #include lines. An edge A -> B means that A's
object uses a symbol B's object defines. Fails (exit 1) when the graph has
a cycle, printing it; otherwise prints the modules layer by layer (each
layer uses only layers above it).

usage: ci/deps.py [OBJECT_DIR]   (default build/release/CMakeFiles/tm_objects.dir/src)
"""
import os
import subprocess
import sys


def symbols(obj):
    out = subprocess.run(["nm", "--defined-only", "-g", obj], capture_output=True, text=True, check=True).stdout
    defined = {line.split()[-1] for line in out.splitlines() if line.strip()}
    out = subprocess.run(["nm", "-u", obj], capture_output=True, text=True, check=True).stdout
    used = {line.split()[-1] for line in out.splitlines() if line.strip()}
    return defined, used


def graph(obj_dir):
    objs = sorted(f for f in os.listdir(obj_dir) if f.endswith(".o"))
    if not objs:
        sys.exit(f"deps.py: no object files in {obj_dir} (build the release preset first)")
    defined_by, uses = {}, {}
    for f in objs:
        mod = f[: -len(".c.o")] if f.endswith(".c.o") else f[:-2]
        d, u = symbols(os.path.join(obj_dir, f))
        for s in d:
            defined_by[s] = mod
        uses[mod] = u
    edges = {m: sorted({defined_by[s] for s in u if s in defined_by and defined_by[s] != m}) for m, u in uses.items()}
    return edges


def strongly_connected(edges):
    """Tarjan's algorithm; returns the components with more than one module."""
    index, low, on_stack, stack, comps, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return comps


def layers(edges):
    """Longest-path layering: layer 0 uses nothing of the core."""
    depth = {}

    def d(v):
        if v not in depth:
            depth[v] = 0
            depth[v] = 1 + max((d(w) for w in edges[v]), default=-1)
        return depth[v]

    for v in edges:
        d(v)
    by = {}
    for v, k in depth.items():
        by.setdefault(k, []).append(v)
    return [sorted(by[k]) for k in sorted(by)]


def main():
    obj_dir = sys.argv[1] if len(sys.argv) > 1 else "build/release/CMakeFiles/tm_objects.dir/src"
    edges = graph(obj_dir)
    cycles = strongly_connected(edges)
    if cycles:
        for comp in cycles:
            print("deps.py: cycle among: " + ", ".join(comp))
            for m in comp:
                print(f"  {m} -> " + ", ".join(w for w in edges[m] if w in comp))
        return 1
    for k, layer in enumerate(layers(edges)):
        print(f"layer {k}: " + "  ".join(f"{m} ({', '.join(edges[m]) or '-'})" for m in layer))
    print(f"deps.py: {len(edges)} modules, no cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
