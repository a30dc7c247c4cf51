/*
 * testutil.c - empty on purpose: the helpers moved to tests/testutil/
 * (library genai_testutil, linked by genai_test()). tests/http and tests/api
 * still list this file among their sources; once they stop, delete it.
 */
#include "testutil.h"
