/* Reference attention kernel: scalar C, one row and one key at a time, online softmax in f32. */
#include "kv.h"

static float key_elem(const kv_state *s, const uint8_t *blk, int32_t h, int32_t slot, int32_t i) {
    const int32_t d = s->cfg.head_dim, bs = s->cfg.block_size;
    int64_t at = ((int64_t)h * d + i) * bs + slot;
    const uint8_t *data = blk + s->k_off;
    switch (s->cfg.dtype) {
    case ISTHMUS_KV_F32: return ((const float *)data)[at];
    case ISTHMUS_KV_F16: return f16_to_f32(((const uint16_t *)data)[at]);
    case ISTHMUS_KV_BF16: return bf16_to_f32(((const uint16_t *)data)[at]);
    default: return (float)((const int8_t *)data)[at] * ((const float *)(blk + s->ks_off))[(int64_t)h * bs + slot];
    }
}

static float value_elem(const kv_state *s, const uint8_t *blk, int32_t h, int32_t slot, int32_t i) {
    const int32_t d = s->cfg.head_dim, bs = s->cfg.block_size;
    int64_t at = ((int64_t)h * bs + slot) * d + i;
    const uint8_t *data = blk + s->v_off;
    switch (s->cfg.dtype) {
    case ISTHMUS_KV_F32: return ((const float *)data)[at];
    case ISTHMUS_KV_F16: return f16_to_f32(((const uint16_t *)data)[at]);
    case ISTHMUS_KV_BF16: return bf16_to_f32(((const uint16_t *)data)[at]);
    default: return (float)((const int8_t *)data)[at] * ((const float *)(blk + s->vs_off))[(int64_t)h * bs + slot];
    }
}

static void unit_ref(const attn_unit *u) {
    const kv_state *s = u->kv;
    const int32_t d = u->head_dim, bs = s->cfg.block_size;
    for (int32_t j = 0; j < u->rows; j++) {
        float m = -INFINITY, l = 0;
        float *o = u->o + (int64_t)j * d;
        for (int32_t i = 0; i < d; i++) o[i] = 0;
        int64_t k0 = u->k_lo > u->lo[j] ? u->k_lo : u->lo[j];
        int64_t k1 = u->k_hi < u->pos[j] + 1 ? u->k_hi : u->pos[j] + 1;
        for (int64_t kp = k0; kp < k1; kp++) {
            const uint8_t *blk = kv_block(s, u->layer, u->table[kp / bs]);
            int32_t slot = (int32_t)(kp % bs);
            float dot = 0;
            for (int32_t i = 0; i < d; i++) dot += u->q[j][i] * key_elem(s, blk, u->kv_head, slot, i);
            float sc = dot * u->scale;
            if (u->softcap > 0) sc = u->softcap * tanhf(sc / u->softcap);
            float mn = sc > m ? sc : m;
            float corr = expf(m - mn), p = expf(sc - mn);
            l = l * corr + p;
            for (int32_t i = 0; i < d; i++) o[i] = o[i] * corr + p * value_elem(s, blk, u->kv_head, slot, i);
            m = mn;
        }
        u->m[j] = m;
        u->l[j] = l;
    }
}

const ATTENTION_kernel attention_paged__ref = {ISTHMUS_ISA_REF, unit_ref};
