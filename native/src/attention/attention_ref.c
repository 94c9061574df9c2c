/* Reference attention kernel: scalar C, one row and one key at a time, online softmax in f32. */
#include "kv.h"

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
            if (u->tree && kp >= u->tree_base) {
                int64_t b = kp - u->tree_base;
                if (!((u->anc[j][b >> 6] >> (b & 63)) & 1)) continue;
            }
            const uint8_t *blk = kv_block(s, u->layer, u->table[kp / bs]);
            int32_t slot = (int32_t)(kp % bs);
            float dot = 0;
            for (int32_t i = 0; i < d; i++) dot += u->q[j][i] * kv_elem(s, blk, u->kv_head, slot, i, 1);
            float sc = dot * u->scale;
            if (u->softcap > 0) sc = u->softcap * tanhf(sc / u->softcap);
            float mn = sc > m ? sc : m;
            float corr = expf(m - mn), p = expf(sc - mn);
            l = l * corr + p;
            for (int32_t i = 0; i < d; i++) o[i] = o[i] * corr + p * kv_elem(s, blk, u->kv_head, slot, i, 0);
            m = mn;
        }
        u->m[j] = m;
        u->l[j] = l;
    }
}

const ATTENTION_kernel attention_paged__ref = {ISTHMUS_ISA_REF, unit_ref};
