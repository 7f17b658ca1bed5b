// trace.glsl: the clock readings of a traced kernel (its *_trace entry
// point, for benchmarks; package vk's KernelTrace reads them back). With
// TRACE defined, TRACE_AT(p) makes lane 0 of the workgroup store the device
// clock's low word (clockRealtime2x32EXT, VK_KHR_shader_clock: every
// workgroup reads the same clock; differences are taken modulo 2^32,
// lavapipe's high word not being reliable) as its reading p of
// TRACE_POINTS, at trace[TRACE_WG * TRACE_POINTS + p]; without TRACE it is
// empty. The includer defines TRACE_BINDING (the trace buffer's binding),
// TRACE_POINTS and TRACE_WG (the workgroup's index, row-major over rows and
// chunks) first.
#ifdef TRACE
layout(std430, set = 0, binding = TRACE_BINDING) restrict writeonly buffer Trace { uint trace[]; };
#define TRACE_AT(p) if (gl_LocalInvocationIndex == 0) trace[(TRACE_WG) * TRACE_POINTS + (p)] = clockRealtime2x32EXT().x;
#else
#define TRACE_AT(p)
#endif
