/* STUB: bsr_pack, to be written. */
#include "sparse.h"
