/* STUB: nm24_pack, to be written. */
#include "sparse.h"
