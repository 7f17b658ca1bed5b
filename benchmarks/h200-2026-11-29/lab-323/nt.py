#!/usr/bin/python3
"""LAB: add the Nontemporal memory operand to every OpLoad whose pointer is an
access chain into the storage buffer at (set 0, binding B). usage: nt.py in.spv out.spv B [B...]"""
import re, subprocess, sys
src, dst, binds = sys.argv[1], sys.argv[2], set(sys.argv[3:])
asm = subprocess.run(["spirv-dis", "--raw-id", src], check=True, capture_output=True, text=True).stdout
lines = asm.splitlines()
var_bind = {}
for l in lines:
    m = re.match(r"\s*OpDecorate (%\d+) Binding (\d+)", l)
    if m: var_bind[m.group(1)] = m.group(2)
roots = {v for v, b in var_bind.items() if b in binds}
ptrs = set(roots)
changed = True
while changed:
    changed = False
    for l in lines:
        m = re.match(r"\s*(%\d+) = Op(?:InBounds)?(?:Ptr)?AccessChain %\d+ (%\d+)", l)
        if m and m.group(2) in ptrs and m.group(1) not in ptrs:
            ptrs.add(m.group(1)); changed = True
n = 0
out = []
for l in lines:
    m = re.match(r"(\s*%\d+ = OpLoad %\d+ (%\d+))(.*)$", l)
    if m and m.group(2) in ptrs:
        rest = m.group(3).strip()
        if rest == "":
            l = m.group(1) + " Nontemporal"
        elif rest.startswith("Aligned "):
            l = m.group(1) + " Aligned|Nontemporal " + rest.split()[1]
        else:
            sys.exit("unexpected operands: " + l)
        n += 1
    out.append(l)
subprocess.run(["spirv-as", "--target-env", "vulkan1.2", "-o", dst, "-"], input="\n".join(out) + "\n", check=True, text=True)
subprocess.run(["spirv-val", "--target-env", "vulkan1.2", dst], check=True)
print(f"{src}: {n} loads marked Nontemporal (bindings {sorted(binds)})")
