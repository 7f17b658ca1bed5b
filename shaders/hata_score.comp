#version 450
// hata_score: HATA's GQA-summed Hamming scores with the selection's
// histogram: see hata_score.glsl.
#extension GL_GOOGLE_include_directive : require
#include "hata_score.glsl"
