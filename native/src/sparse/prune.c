/* STUB: isthmus_prune_mask, to be written. */
#include "sparse.h"

isthmus_status isthmus_prune_mask(const isthmus_prune_args *args) {
    (void)args;
    return isthmus__fail(ISTHMUS_ERR_UNSUPPORTED, "isthmus_prune_mask: not implemented yet");
}
