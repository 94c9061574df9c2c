#include "harness.h"
const test_case verify_tests[] = {{NULL, NULL, NULL}};
