#!/usr/bin/env bash
# Keeps the declared `rust-version` (workspace.package) honest without
# installing that toolchain (none but stable and nightly can be installed here):
#
# 1. Our own code: clippy's `incompatible_msrv` lint (on by default, run with
#    -D warnings by the clippy step) flags any std API stabilised after the
#    declared rust-version.
# 2. Dependencies (this script): no package that a published crate needs to
#    build (normal and build dependencies, as locked in Cargo.lock, on every
#    platform; not those behind the private `cfg(nexus_loom)`, which only
#    this repository's loom runs set) may declare a `rust-version` newer than ours. Packages only
#    the tests, examples and benches use are listed, not failed: they do not
#    reach users.
#
# What this does not prove: that a compiler as old as rust-version accepts
# the code (a dependency without a rust-version field, a language feature
# clippy does not track). Only building with that toolchain would.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo metadata --format-version 1 --locked |
python3 -c '
import json, sys

def ver(v):
    parts = [int(x) for x in v.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))

meta = json.load(sys.stdin)
pkgs = {p["id"]: p for p in meta["packages"]}
members = [pkgs[m] for m in meta["workspace_members"]]
published = [p for p in members if p.get("publish") != []]
declared = {p["rust_version"] for p in published}
if len(declared) != 1 or None in declared:
    sys.exit(f"msrv: published crates must share one rust-version, found {sorted(map(str, declared))}")
ours = declared.pop()
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}

def closure(roots, kinds):
    seen, todo = set(), list(roots)
    while todo:
        i = todo.pop()
        if i in seen:
            continue
        seen.add(i)
        for d in nodes[i]["deps"]:
            if any(k["kind"] in kinds and "nexus_loom" not in (k["target"] or "") for k in d["dep_kinds"]):
                todo.append(d["pkg"])
    return seen

user_facing = closure([p["id"] for p in published], {None, "build"})
everything = closure([p["id"] for p in members], {None, "build", "dev"})
too_new, dev_only, unknown = [], [], 0
for i in sorted(everything, key=lambda i: pkgs[i]["name"]):
    p = pkgs[i]
    rv = p.get("rust_version")
    if rv is None:
        unknown += i in user_facing
        continue
    if ver(rv) > ver(ours):
        (too_new if i in user_facing else dev_only).append("%s %s (rust-version %s)" % (p["name"], p["version"], rv))
print(f"msrv: declared rust-version {ours}; {len(user_facing)} packages needed by the published crates, {unknown} of them declare no rust-version")
for line in dev_only:
    print(f"msrv: note: tests/examples/benches only: {line}")
if too_new:
    print("msrv: these dependencies of the published crates need a newer Rust than declared:")
    for line in too_new:
        print(f"msrv:   {line}")
    sys.exit(1)
print("msrv: ok")
'
