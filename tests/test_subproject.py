#!/usr/bin/env python3
"""tapegrad as a Meson subproject of a parent that keeps Meson's default
build type (debug, -O0): the library must still compile optimised, no test,
benchmark or example of tapegrad may be configured, and a parent program
linked against dependency('tapegrad') must build and run.

usage: test_subproject.py SOURCE_ROOT MESON NINJA
Exit 77 (Meson's "skipped") when the parent cannot be set up for reasons
outside tapegrad (no symlinks, no compiler for the parent).
"""
import json
import os
import subprocess
import sys
import tempfile

SKIP = 77

PARENT_BUILD = """project('parent', 'c')
tapegrad_dep = dependency('tapegrad', fallback: ['tapegrad', 'tapegrad_dep'])
exe = executable('parent', 'main.c', dependencies: tapegrad_dep)
"""

# Something the library computes that the parent can check: the sum of
# a [2, 3] tensor filled with 1.5, through the tape and its backward.
PARENT_MAIN = r"""#include <stdio.h>
#include "tapegrad.h"
int main(void)
{
    tg_tape *t = tg_tape_new(0);
    int shape[2] = {2, 3};
    tg_tensor *x = tg_param_new(2, shape, "x");
    if (!t || !x)
        return 1;
    tg_fill(x, 1.5f);
    tg_tensor *s = tg_sum(t, x);
    if (!s || tg_backward(t, s) != TG_OK)
        return 1;
    printf("%g %g\n", (double)s->data[0], (double)x->grad[5]);
    tg_tape_free(t);
    tg_param_free(x);
    return 0;
}
"""


def run(cmd, cwd):
    r = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        sys.exit("FAIL: %s exited %d:\n%s" % (" ".join(cmd), r.returncode, r.stdout[-4000:]))
    return r.stdout


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: test_subproject.py SOURCE_ROOT MESON NINJA")
    src, meson, ninja = sys.argv[1:]
    with tempfile.TemporaryDirectory(prefix="tg_subproject_") as parent:
        os.mkdir(os.path.join(parent, "subprojects"))
        try:
            os.symlink(os.path.abspath(src), os.path.join(parent, "subprojects", "tapegrad"))
        except OSError as e:
            print("SKIP: cannot symlink the source tree: %s" % e)
            return SKIP
        with open(os.path.join(parent, "meson.build"), "w") as f:
            f.write(PARENT_BUILD)
        with open(os.path.join(parent, "main.c"), "w") as f:
            f.write(PARENT_MAIN)
        build = os.path.join(parent, "build")
        # No -D: the parent keeps Meson's default build type.
        run([meson, "setup", build], parent)

        with open(os.path.join(build, "compile_commands.json")) as f:
            commands = json.load(f)
        lib = [c for c in commands if "/subprojects/tapegrad/src/" in c["file"]]
        assert len(lib) >= 10, "expected the library's sources in compile_commands.json, found %d" % len(lib)
        for c in lib:
            opts = [a for a in c["command"].split() if a.startswith("-O")]
            # The last -O on a GCC or Clang command line is the one that counts.
            assert opts and opts[-1] in ("-O2", "-O3"), "%s compiles with %s" % (c["file"], opts or "no -O")
        others = [c for c in commands if "/subprojects/tapegrad/" in c["file"] and c not in lib]
        assert not others, "compiled besides the library: %s" % [c["file"] for c in others]

        targets = json.loads(run([meson, "introspect", "--targets", build], parent))
        names = sorted(t["name"] for t in targets)
        assert names == ["parent", "tapegrad", "tapegrad_gemm"], "targets configured: %s" % names
        for kind in ("--tests", "--benchmarks"):
            registered = json.loads(run([meson, "introspect", kind, build], parent))
            assert registered == [], "%s registered: %s" % (kind, [t["name"] for t in registered])

        run([ninja, "-C", build], parent)
        out = run([os.path.join(build, "parent")], parent).split()
        assert out == ["9", "1"], "parent program printed %s, expected the sum 9 and gradient 1" % out
    print("subproject: library at -O2/-O3 under a default-build parent, %d sources; "
          "no tests, benchmarks or examples; the parent links and runs" % len(lib))
    return 0


if __name__ == "__main__":
    sys.exit(main())
