import sys
head = '''#version 450
#extension GL_EXT_control_flow_attributes : require
layout(local_size_x_id = 0) in;
layout(set = 0, binding = 0) readonly buffer Src { uvec4 src[]; };
layout(set = 0, binding = 1) writeonly buffer Dst { uvec4 dst[]; };
layout(push_constant) uniform PushConstants { uint n; } pc;
void main() {
    float x = float(gl_LocalInvocationIndex);
'''
tail = '''    if (x == 0.123456) dst[0] = uvec4(1);
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += stride) {
        dst[i] = src[i];
    }
}
'''
def straight(k):
    body = ''.join('    x = fma(x, %.6f, %.6f);\n' % (0.999 - (i % 97) * 1e-5, (i % 89) * 1e-3 + 1e-4) for i in range(k))
    return head + body + tail
def loop(k):
    body = '    [[dont_unroll]] for (uint j = 0; j < %d * gl_NumWorkGroups.y; j++) {\n        float c = float(j) * 1e-6;\n' % (k // 8)
    body += ''.join('        x = fma(x, %.6f, c + %.6f);\n' % (0.999 - i * 1e-5, i * 1e-3 + 1e-4) for i in range(8))
    body += '    }\n'
    return head + body + tail
hot = head.replace('float x = float(gl_LocalInvocationIndex);', 'float x = uintBitsToFloat(src[0].x | 0x3f800000u);') + tail
for k in (256, 1024, 2048):
    open('s%d.comp' % k, 'w').write(straight(k))
    open('l%d.comp' % k, 'w').write(loop(k))
open('hot.comp', 'w').write(hot)
