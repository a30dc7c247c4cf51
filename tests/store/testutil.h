/*
 * testutil.h - the store tests' helpers (temporary folders, whole files,
 * deterministic bodies, waiting with a deadline, fd counts) now live in
 * tests/testutil/testutil.h, shared by every module's tests; this header
 * forwards there for the tests that still include it by this path.
 */
#ifndef GENAI_TESTS_STORE_TESTUTIL_H
#define GENAI_TESTS_STORE_TESTUTIL_H

#include "testutil/testutil.h"

#endif
