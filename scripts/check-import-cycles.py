#!/usr/bin/env python3
"""Fails when the files of a Rust crate import each other in a circle.

Usage:
    scripts/check-import-cycles.py SRC_DIR [SRC_DIR ...]   # e.g. kernels/src
    scripts/check-import-cycles.py --with-tests SRC_DIR     # also count #[cfg(test)] code
    scripts/check-import-cycles.py --edges SRC_DIR          # also lists every import between files
    scripts/check-import-cycles.py --self-test              # checks the checker on small crates

The graph: one node per .rs file reachable from the crate root (lib.rs or main.rs) through `mod`
declarations; an edge A -> B when A names an item of B, through
- `use crate::...`, `use super::...`, `use self::...` and `use child::...` statements (brace
  groups, `self`, aliases and globs included), and
- paths in code: `crate::a::b`, `super::x`, `$crate::...`, and paths starting with a name a `use`
  brought in (`registry::find` after `use crate::registry`).
Paths resolve to files as rustc does: `a::b` is the file of module `b` (`b.rs` or `b/mod.rs`) when
`b` is a module, else the file of module `a` that defines the item. `super::` inside an inline
`mod tests { ... }` stays in its own file; `super::` in `x86_64/dwconv.rs` is `x86_64/mod.rs`.

Re-exports are pass-throughs: a name taken through `pub use` (or `pub(crate) use`) in a facade such
as lib.rs leads to the file that defines the item; the re-exporting file depends on that file only
if its own code uses the name too. A path in code through the re-export of a module other than the
crate root (`$crate::dwconv::DwConvGeom` in a macro, where dwconv.rs re-exports it) also names that
module's file. Test code (`#[cfg(test)]` items and files declared under
`#[cfg(test)] mod x;`) is left out unless `--with-tests` is given: like Cargo's dev-dependencies,
tests may reach upward. Comments and string literals are ignored.

Exit status 1 and the circles (each with the imports that close it) when there is a cycle.
Python 3 standard library only.
"""

import os
import re
import sys
import tempfile

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip(src):
    """`src` with comments, strings and char literals blanked (newlines kept, offsets unchanged)."""
    out = list(src)
    i, n = 0, len(src)

    def blank(a, b):
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif c == "r" and re.match(r'r#*"', src[i:i + 10]) and not re.match(r"\w", src[i - 1] if i else " "):
            m = re.match(r'r(#*)"', src[i:])
            end = '"' + m.group(1)
            j = src.find(end, i + len(m.group(0)))
            j = n if j < 0 else j + len(end)
            blank(i, j)
            i = j
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            blank(i, j + 1)
            i = j + 1
        elif c == "'":
            # A char literal ('a', '\n', '\u{1F}'), not a lifetime ('a).
            m = re.match(r"'(\\(u\{[0-9a-fA-F]+\}|x..|.)|[^\\'])'", src[i:i + 12])
            if m:
                blank(i, i + len(m.group(0)))
                i += len(m.group(0))
            else:
                i += 1
        else:
            i += 1
    return "".join(out)


def match_brace(s, i):
    """Index just past the `}` matching the `{` at `i`."""
    depth = 0
    for j in range(i, len(s)):
        if s[j] == "{":
            depth += 1
        elif s[j] == "}":
            depth -= 1
            if depth == 0:
                return j + 1
    return len(s)


def item_end(s, i):
    """End of the item starting at `i`: its `;` or its matching `}`, whichever comes first."""
    depth = 0
    for j in range(i, len(s)):
        c = s[j]
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif c == ";" and depth == 0:
            return j + 1
        elif c == "{" and depth == 0:
            return match_brace(s, j)
    return len(s)


def is_test_cfg(attr):
    return re.search(r"\btest\b", attr) and "not(" not in attr


def split_use_tree(tree):
    """`a::{b, c::{d as e, self}, f::*}` -> [(segments, alias)]; alias None for a glob."""
    tree = re.sub(r"\s+as\s+", "@", tree.strip())
    tree = re.sub(r"\s+", "", tree)
    out = []

    def walk(prefix, t):
        if "{" in t:
            i = t.index("{")
            head = t[:i].rstrip(":")
            pre = prefix + [p for p in head.split("::") if p]
            body = t[i + 1:t.rindex("}")]
            parts, depth, cur = [], 0, ""
            for ch in body:
                if ch == "{":
                    depth += 1
                elif ch == "}":
                    depth -= 1
                if ch == "," and depth == 0:
                    parts.append(cur)
                    cur = ""
                else:
                    cur += ch
            parts.append(cur)
            for p in parts:
                if p:
                    walk(pre, p)
            return
        alias = None
        if "@" in t:
            t, alias = t.split("@", 1)
        segs = prefix + [p for p in t.split("::") if p]
        if segs and segs[-1] == "self":
            segs = segs[:-1]
        if segs and segs[-1] == "*":
            out.append((segs[:-1], None))
        elif segs:
            out.append((segs, alias or segs[-1]))

    walk([], tree)
    return out


class Module:
    def __init__(self, path, file, test):
        self.path = path  # tuple of names from the crate root
        self.file = file
        self.test = test
        self.children = {}  # name -> Module
        self.defs = set()  # item names defined here
        self.reexports = {}  # name -> absolute path (list) or ("glob", path)
        self.globs = []  # absolute module paths re-exported with `pub use x::*`


class Crate:
    def __init__(self, src_dir, with_tests):
        self.src_dir = os.path.normpath(src_dir)
        self.with_tests = with_tests
        root = None
        for name in ("lib.rs", "main.rs"):
            p = os.path.join(self.src_dir, name)
            if os.path.exists(p):
                root = p
                break
        if root is None:
            raise SystemExit(f"{src_dir}: no lib.rs or main.rs")
        self.texts = {}
        self.code_only = {}
        self.root = Module((), root, False)
        self.modules = {(): self.root}
        self.uses = []  # (module, absolute segments, line, reexport, test, text)
        self.code_paths = []  # (module, absolute segments, line, test, text)
        self.load(self.root)

    def rel(self, f):
        return os.path.relpath(f)

    def child_dir(self, f):
        base = os.path.basename(f)
        if base in ("lib.rs", "main.rs", "mod.rs"):
            return os.path.dirname(f)
        return os.path.splitext(f)[0]

    def load(self, mod):
        raw = open(mod.file, encoding="utf-8").read()
        s = strip(raw)
        self.texts[mod.file] = s
        line_of = lambda i: s.count("\n", 0, i) + 1
        # Test regions: #[cfg(test)] items.
        test_ranges = []
        for m in re.finditer(r"#\s*\[\s*cfg\s*\((.*?)\)\s*\]", s):
            if is_test_cfg(m.group(1)):
                j = m.end()
                while True:  # further attributes
                    a = re.match(r"\s*#\s*\[", s[j:])
                    if not a:
                        break
                    depth, k = 0, j + a.end() - 1
                    while k < len(s):
                        depth += {"[": 1, "]": -1}.get(s[k], 0)
                        k += 1
                        if depth == 0:
                            break
                    j = k
                test_ranges.append((m.start(), item_end(s, j)))
        in_test = lambda i: mod.test or any(a <= i < b for a, b in test_ranges)
        # Inline modules: (start, end, Module).
        inline = []

        def module_at(i):
            best = mod
            for a, b, m in inline:
                if a <= i < b and len(m.path) > len(best.path):
                    best = m
            return best

        for m in re.finditer(r"\bmod\s+(" + IDENT + r")\s*([;{])", s):
            name = m.group(1)
            parent = module_at(m.start())
            test = in_test(m.start())
            if m.group(2) == "{":
                end = match_brace(s, m.end() - 1)
                child = Module(parent.path + (name,), mod.file, test)
                parent.children[name] = child
                self.modules[child.path] = child
                inline.append((m.start(), end, child))
            elif parent is mod:
                d = self.child_dir(mod.file)
                for cand in (os.path.join(d, name + ".rs"), os.path.join(d, name, "mod.rs")):
                    if os.path.exists(cand):
                        child = Module(mod.path + (name,), cand, test)
                        parent.children[name] = child
                        self.modules[child.path] = child
                        self.load(child)
                        break
        for m in re.finditer(
            r"\b(?:fn|struct|enum|trait|type|const|static|union)\s+(" + IDENT + r")|\bmacro_rules!\s*(" + IDENT + r")",
            s,
        ):
            module_at(m.start()).defs.add(m.group(1) or m.group(2))
        # Use statements.
        use_spans = []
        for m in re.finditer(r"(\bpub\s*(\([^)]*\))?\s*)?\buse\s+([^;]*);", s):
            use_spans.append((m.start(), m.end()))
            owner = module_at(m.start())
            reexport = bool(m.group(1))
            for segs, alias in split_use_tree(m.group(3)):
                absolute = self.absolute(owner, segs)
                if absolute is None:
                    continue
                if reexport:
                    if alias is None:
                        owner.globs.append(absolute)
                    else:
                        owner.reexports[alias] = absolute
                self.uses.append((owner, absolute, alias, line_of(m.start()), reexport, in_test(m.start())))
        # The file's own code: without its use statements and `mod` declarations.
        code = list(s)
        for a, b in use_spans:
            code[a:b] = " " * (b - a)
        self.code_only[mod.file] = re.sub(r"\bmod\s+" + IDENT, " ", "".join(code))
        # Paths in code (outside use statements).
        for m in re.finditer(r"(?<![\w:$])(\$?" + IDENT + r")((?:\s*::\s*" + IDENT + r")+)", s):
            if any(a <= m.start() < b for a, b in use_spans):
                continue
            first = m.group(1)
            rest = [p.strip() for p in m.group(2).split("::") if p.strip()]
            owner = module_at(m.start())
            segs = [first] + rest
            if first == "$crate":
                segs = ["crate"] + rest
            self.code_paths.append((owner, segs, line_of(m.start()), in_test(m.start())))

    def absolute(self, owner, segs):
        """Absolute module path of `segs` as written in `owner`, or None for an extern crate."""
        if not segs:
            return None
        head = segs[0]
        if head == "crate":
            return list(segs[1:])
        if head in ("super", "self"):
            path = list(owner.path)
            i = 0
            while i < len(segs) and segs[i] in ("super", "self"):
                if segs[i] == "super":
                    path = path[:-1]
                i += 1
            return path + list(segs[i:])
        if head in owner.children or head in owner.defs:
            return list(owner.path) + list(segs)
        return None

    def resolve(self, segs, depth=0, via=None):
        """The module whose file defines the item at absolute path `segs`. Modules other than the
        crate root whose re-export the path goes through are appended to `via` (when given)."""
        mod = self.root
        for i, seg in enumerate(segs):
            if seg in mod.children:
                mod = mod.children[seg]
                continue
            if depth < 16 and seg in mod.reexports and seg not in mod.defs:
                if via is not None and mod is not self.root:
                    via.append(mod)
                return self.resolve(mod.reexports[seg] + list(segs[i + 1:]), depth + 1, via)
            if depth < 16 and seg not in mod.defs:
                for g in mod.globs:
                    target = self.resolve(g + [seg], depth + 1)
                    tmod = self.modules.get(tuple(g))
                    if target is not None and (tmod is None or target is not tmod or seg in tmod.defs):
                        return target
            return mod
        return mod

    def graph(self):
        edges = {}  # (from file, to file) -> first reason

        def add(owner, target, line, text):
            if target is None:
                return
            a, b = owner.file, target.file
            if a != b and (self.with_tests or not target.test):
                edges.setdefault((a, b), f"{self.rel(a)}:{line}: {text}")

        # Names each module brought in with a (non-re-export) use: for code paths.
        scope = {}
        for owner, absolute, alias, line, reexport, test in self.uses:
            if test and not self.with_tests:
                continue
            if alias:
                scope.setdefault(owner.path, {})[alias] = absolute
            if reexport:
                # A pass-through; an edge only if the file's own code names it.
                name = alias or ""
                code = self.code_only[owner.file]
                if not (name and re.search(r"(?<![\w])" + re.escape(name) + r"(?![\w])", code)):
                    continue
            add(owner, self.resolve(absolute), line, "use " + "::".join(absolute))
        for owner, segs, line, test in self.code_paths:
            if test and not self.with_tests:
                continue
            local = scope.get(owner.path, {})
            if segs[0] in local:
                absolute = local[segs[0]] + segs[1:]
            else:
                absolute = self.absolute(owner, segs)
            if absolute is None:
                continue
            # A path through another module's re-export (`crate::dwconv::DwConvGeom` where
            # dwconv.rs has `pub use crate::ukernel::DwConvGeom`) names that module too: the file
            # depends on it (unlike the crate root's facade, which every file may name through).
            via = []
            add(owner, self.resolve(absolute, via=via), line, "::".join(segs))
            for facade in via:
                add(owner, facade, line, "::".join(segs) + " (through a re-export)")
        return edges


def find_cycles(edges):
    """Strongly connected components with more than one file (Tarjan, iterative)."""
    nodes = sorted({a for a, _ in edges} | {b for _, b in edges})
    succ = {n: sorted(b for (a, b) in edges if a == n) for n in nodes}
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    for root in nodes:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter[0]
                counter[0] += 1
                stack.append(v)
                on.add(v)
            recurse = False
            for j in range(i, len(succ[v])):
                w = succ[v][j]
                if w not in index:
                    work.append((v, j + 1))
                    work.append((w, 0))
                    recurse = True
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            if recurse:
                continue
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
            if work:
                u = work[-1][0]
                low[u] = min(low[u], low[v])
    return out


def one_circle(comp, edges):
    """A shortest circle through the first file of `comp` (breadth-first inside the component)."""
    start, inside = comp[0], set(comp)
    prev, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for (a, b) in edges:
                if a != v or b not in inside:
                    continue
                if b == start:
                    path = [v]
                    while prev[path[-1]] is not None:
                        path.append(prev[path[-1]])
                    return list(reversed(path)) + [start]
                if b not in prev:
                    prev[b] = v
                    nxt.append(b)
        frontier = nxt
    return [start]


def check(src_dir, with_tests, quiet=False, show=False):
    crate = Crate(src_dir, with_tests)
    edges = crate.graph()
    if show:
        for (a, b), why in sorted(edges.items()):
            print(f"{crate.rel(a)} -> {crate.rel(b)}   ({why})")
    cycles = find_cycles(edges)
    files = len({m.file for m in crate.modules.values()})
    if not cycles:
        if not quiet:
            print(f"{src_dir}: no import cycle ({files} files, {len(edges)} imports between files)")
        return True
    if not quiet:
        print(f"{src_dir}: {len(cycles)} import cycle(s)")
        for comp in cycles:
            print(f"  {len(comp)} files: " + ", ".join(crate.rel(f) for f in comp))
            circle = one_circle(comp, edges)
            print("  for example:")
            for a, b in zip(circle, circle[1:]):
                print(f"    {crate.rel(a)} -> {crate.rel(b)}   ({edges[(a, b)]})")
    return False


def self_test():
    """The checker finds planted circles and accepts the same crates without them."""
    cases = {
        "cycle through use, super and a code path": (
            {
                "lib.rs": "mod a;\nmod b;\nmod c;\n",
                "a.rs": "use crate::b::X;\n",
                "b.rs": "pub struct X;\nuse super::c::y;\n",
                "c.rs": "pub fn y() { crate::a::f() }\n",
            },
            False,
        ),
        "child's super:: to its own mod.rs": (
            {
                "lib.rs": "mod t;\n",
                "t/mod.rs": "mod k;\nuse k::run;\npub struct V;\n",
                "t/k.rs": "use super::V;\npub fn run() {}\n",
            },
            False,
        ),
        "no cycle: facade re-exports, inline test module, comments, strings": (
            {
                "lib.rs": "mod a;\nmod b;\npub use a::A;\npub use b::B;\n// use crate::a::A;\n",
                "a.rs": "pub struct A;\nfn f() { let _ = \"crate::b::B\"; }\n"
                "#[cfg(test)]\nmod tests {\n    use super::*;\n    use crate::b::B;\n}\n",
                "b.rs": "use crate::A;\npub struct B(A);\n",
            },
            True,
        ),
        "a re-export that its own file also uses is an import": (
            {
                "lib.rs": "mod a;\nmod b;\n",
                "a.rs": "pub use crate::b::B;\npub struct A(B);\n",
                "b.rs": "use crate::a::A;\npub struct B;\nfn g(_: A) {}\n",
            },
            False,
        ),
        "a macro's $crate:: path through another module's re-export names that module": (
            {
                "lib.rs": "mod geom;\nmod op;\nmod tier;\n",
                "geom.rs": "pub struct G;\n",
                "op.rs": "pub use crate::geom::G;\nuse crate::tier::run;\npub fn f() { run() }\n",
                "tier.rs": "macro_rules! entry {\n    () => {\n        pub fn run(_: &$crate::op::G) {}\n"
                "    };\n}\nentry!();\n",
            },
            False,
        ),
        "test-only file under #[cfg(test)] mod is left out": (
            {
                "lib.rs": "mod a;\n#[cfg(test)]\nmod t;\n",
                "a.rs": "pub fn f() {}\n#[cfg(test)]\nfn g() { crate::t::h() }\n",
                "t.rs": "use crate::a::f;\npub fn h() { f() }\n",
            },
            True,
        ),
    }
    ok = True
    for name, (files, acyclic) in cases.items():
        with tempfile.TemporaryDirectory() as d:
            src = os.path.join(d, "src")
            for rel, text in files.items():
                p = os.path.join(src, rel)
                os.makedirs(os.path.dirname(p), exist_ok=True)
                with open(p, "w", encoding="utf-8") as f:
                    f.write(text)
            got = check(src, False, quiet=True)
            good = got == acyclic
            ok &= good
            print(f"self-test {'ok  ' if good else 'FAIL'} {name}: {'no cycle' if got else 'cycle'} found")
    return ok


def main(argv):
    with_tests = "--with-tests" in argv
    args = [a for a in argv if not a.startswith("--")]
    if "--self-test" in argv:
        return 0 if self_test() else 1
    if not args:
        print(__doc__)
        return 2
    ok = True
    for d in args:
        ok &= check(d, with_tests, show="--edges" in argv)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
