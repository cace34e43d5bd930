// argmax in C: the highest score wins; ties go to the lowest index; NaN and missing scores
// never win. Same behaviour as the bundled Rust `argmax` (CI compares them).
//
// Ownership, as wit-bindgen's C bindings define it: the request belongs to us (we free it);
// every string and list we return must be heap memory (malloc / policy_string_dup), which the
// bindings free after the host has copied it.

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

typedef arbiter_policy_types_candidate_t candidate_t;

static bool usable(const candidate_t *c) { return c->score.is_some && !isnan(c->score.val); }

// Best first: usable before unusable, higher score first (-0.0 == 0.0), then lower index.
static int by_score(const void *pa, const void *pb) {
    const candidate_t *a = *(const candidate_t *const *)pa, *b = *(const candidate_t *const *)pb;
    if (usable(a) != usable(b)) return usable(a) ? -1 : 1;
    if (usable(a) && a->score.val != b->score.val) return a->score.val > b->score.val ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index;
}

// Formats into a heap string the bindings free after the host copied it.
__attribute__((format(printf, 2, 3))) static void set_reason(policy_string_t *out, const char *fmt, ...) {
    char buf[256];
    va_list args;
    va_start(args, fmt);
    vsnprintf(buf, sizeof buf, fmt, args);
    va_end(args);
    policy_string_dup(out, buf);
}

void exports_arbiter_policy_selector_info(exports_arbiter_policy_selector_policy_info_t *ret) {
    policy_string_dup(&ret->name, "c-argmax");
    policy_string_dup(&ret->version, "1.0.0");
    ret->wants_prescored = true;
    policy_string_dup(&ret->params_doc, "(none)");
}

bool exports_arbiter_policy_selector_select(exports_arbiter_policy_selector_request_t *req,
                                            exports_arbiter_policy_selector_selection_t *ret,
                                            exports_arbiter_policy_selector_policy_error_t *err) {
    bool ok = false;
    size_t n = req->candidates.len;
    candidate_t **order = NULL;
    if (req->params.len > 0) {
        const policy_string_t *key = &req->params.ptr[0].f0;
        char buf[160];
        snprintf(buf, sizeof buf, "unknown parameter `%.*s` (this policy takes none)", (int)(key->len > 100 ? 100 : key->len),
                 (const char *)key->ptr);
        err->tag = ARBITER_POLICY_TYPES_POLICY_ERROR_INVALID_PARAMS;
        policy_string_dup(&err->val.invalid_params, buf);
        goto done;
    }
    if (n == 0) {
        err->tag = ARBITER_POLICY_TYPES_POLICY_ERROR_NO_CANDIDATES;
        goto done;
    }
    order = malloc(n * sizeof *order);
    ret->ranking.ptr = malloc(n * sizeof *ret->ranking.ptr);
    if (order == NULL || ret->ranking.ptr == NULL) {
        free(ret->ranking.ptr);
        err->tag = ARBITER_POLICY_TYPES_POLICY_ERROR_FAILED;
        policy_string_dup(&err->val.failed, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) order[i] = &req->candidates.ptr[i];
    qsort(order, n, sizeof *order, by_score);
    ret->ranking.len = n;
    for (size_t i = 0; i < n; i++) ret->ranking.ptr[i] = order[i]->index;

    const candidate_t *top = order[0];
    ret->chosen.is_some = usable(top);
    ret->chosen.val = top->index;
    if (usable(top)) {
        set_reason(&ret->reason, "candidate %u has the highest score (%g) of %zu", top->index, (double)top->score.val, n);
    } else {
        set_reason(&ret->reason, "none of the %zu candidates has a usable score", n);
    }
    ok = true;
done:
    free(order);
    exports_arbiter_policy_selector_request_free(req);
    return ok;
}
