/*
 * fuzz_http_requests.c - libFuzzer target for the inference routes' request
 * parsing: the body guard (depth, syntax) followed by the image request
 * parser of POST /v1/images/generations (svc_image_parse) and the model
 * field of the text routes. On success the parsed request must hold a
 * prompt and a batch of 1..8, and validating it must not fail in any way
 * but GENAI_EBAD_ARG. The corpus (tests/http/corpus_requests/) is replayed
 * by the normal test suite.
 */
/* The assertions are what this target checks: keep them in every build
 * type, NDEBUG (CMake's Release) included. */
#undef NDEBUG
#include "api/service.h"
#include "core/alloc.h"
#include "http/guard.h"
#include "image/request.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *v = NULL;
    if (guard_json_parse((const char *)data, size, 64, &v, NULL) != 0)
        return 0;
    /* The text routes read only "model", as a non-empty string. */
    json_t *model = json_object_get(v, "model");
    if (json_is_string(model))
        (void)json_string_length(model);

    img_request r;
    char *id = NULL;
    genai_error err;
    genai_error_clear(&err);
    int rc = svc_image_parse(v, &r, &id, &err);
    if (rc == 0) {
        assert(r.prompt != NULL && r.prompt[0] != '\0');
        assert(r.batch_count >= 1 && r.batch_count <= IMG_BATCH_MAX);
        int vr = img_request_validate(&r, &err);
        assert(vr == 0 || vr == GENAI_EBAD_ARG);
        img_request_free(&r);
        mem_free(id);
    } else {
        assert(rc == GENAI_EBAD_ARG || rc == -ENOMEM);
        assert(err.detail[0] != '\0');
    }
    json_decref(v);
    return 0;
}
