# nginx end-to-end tests: pytest starts a real nginx with the module and
# real plugins against a Python upstream. WAT modules (mostly invalid ones
# for `nginx -t`) and C test plugins build into build/wasm/nginx/. The suite
# is not run under SAN=1: the module is only built in the rel build.

NGX_TEST_WASM_DIR := $(WASM_OUT)/nginx
NGX_TEST_WATS := $(wildcard tests/nginx/plugins/*.wat)
NGX_TEST_CS := $(wildcard tests/nginx/plugins/*.c)
NGX_TEST_WASMS := \
    $(NGX_TEST_WATS:tests/nginx/plugins/%.wat=$(NGX_TEST_WASM_DIR)/%.wasm) \
    $(NGX_TEST_CS:tests/nginx/plugins/%.c=$(NGX_TEST_WASM_DIR)/%.wasm) \
    $(NGX_TEST_WASM_DIR)/ngxtest_v010.wasm
NGX_PYTEST := $(BUILD)/tests/nginx/pytest.sh

WASMS += $(NGX_TEST_WASMS)

# The whole suite runs twice: on V8, then on the w2c engine (plugins
# compiled ahead of time, one cache for the run).
ifneq ($(SAN),1)
BINS += $(NGX_PYTEST)
TESTS += $(NGX_PYTEST) \
         "env PW_NGINX_ENGINE=w2c PW_NGINX_ENGINE_CACHE=$(CURDIR)/$(BUILD)/w2c-cache $(NGX_PYTEST)"
endif

$(NGX_TEST_WASM_DIR)/%.wasm: tests/nginx/plugins/%.wat
	@mkdir -p $(@D)
	$(WAT2WASM) --debug-names $< -o $@

$(NGX_TEST_WASM_DIR)/%.wasm: tests/nginx/plugins/%.c $(SDK_C_DEPS)
	@mkdir -p $(@D)
	$(WASM_CC) $(WASM_CFLAGS) $(SDK_C_CFLAGS) -o $@ $< $(SDK_C_SRC)

# ngxtest for ABI 0.1.0 (continue_request/_response, no log level)
$(NGX_TEST_WASM_DIR)/ngxtest_v010.wasm: tests/nginx/plugins/ngxtest.c \
                                        $(SDK_C_DEPS)
	@mkdir -p $(@D)
	$(WASM_CC) $(WASM_CFLAGS) $(SDK_C_CFLAGS) \
	    -DPX_ABI_VERSION=PX_ABI_0_1_0 -o $@ $< $(SDK_C_SRC)

# A one-word command for TESTS: pytest with the module and plugin paths.
$(NGX_PYTEST): tests/nginx/module.mk
	@mkdir -p $(@D)
	printf '%s\n' '#!/bin/sh' 'cd $(CURDIR) || exit 1' \
	    'PW_NGINX_MODULE=$(CURDIR)/$(NGX_MODULE) \' \
	    'PW_WASM_DIR=$(CURDIR)/$(WASM_OUT) \' \
	    'PW_NGINX_WASM_DIR=$(CURDIR)/$(NGX_TEST_WASM_DIR) \' \
	    'exec /usr/bin/python3 -m pytest -q tests/nginx "$$@"' > $@
	chmod +x $@

.PHONY: nginx-test nginx-test-plugins
nginx-test-plugins: $(NGX_TEST_WASMS)

nginx-test: nginx-module $(NGX_PYTEST) $(NGX_TEST_WASMS) $(WASMS)
	$(NGX_PYTEST)


# A representative subset under valgrind's memcheck (conftest.py,
# PW_NGINX_VALGRIND=1): the workers run V8 inside Debian's uninstrumented
# nginx, out of ASan's reach. Any memory error, or a definite leak from our
# code, fails the test. A few minutes on 2 cores.
NGX_VALGRIND_TESTS := $(addprefix tests/nginx/, \
    test_headers.py::test_request_header_add_replace_remove \
    test_headers.py::test_response_header_add_replace_remove \
    test_headers.py::test_set_headers_replaces_all \
    test_headers.py::test_many_headers \
    test_body.py::test_request_body_seen_chunked \
    test_body.py::test_request_body_spooled_to_temp_file \
    test_body.py::test_request_body_replaced_when_spooled \
    test_body.py::test_request_body_replaced_unbuffered_proxying \
    test_body.py::test_response_body_replaced_big_chunked \
    test_body.py::test_response_body_replaced_big_static \
    test_body.py::test_body_redact_across_chunks \
    test_pause.py::test_pause_request_headers \
    test_pause.py::test_pause_request_body_chunked_big \
    test_pause.py::test_pause_response_body \
    test_pause.py::test_close_stream_from_response_body \
    test_local_response.py::test_local_response_from_request_headers \
    test_local_response.py::test_local_response_from_response_headers \
    test_local_response.py::test_local_response_keeps_connection_usable \
    test_failure.py::test_trap_in_request_headers_fails_closed \
    test_failure.py::test_trap_in_response_body_closed_cuts_the_answer \
    test_failure.py::test_next_request_after_trap_works \
    test_failure.py::test_trap_under_stream_isolation \
    test_stream_end.py::test_end_callbacks_once_with_body \
    test_stream_end.py::test_end_callbacks_when_client_leaves_during_upstream \
    test_stream_end.py::test_end_callbacks_when_client_leaves_while_paused \
    test_isolation.py::test_isolation_stream_fresh_state \
    test_isolation.py::test_isolation_stream_with_chain \
    test_chain.py::test_body_changes_compose \
    test_abi.py::test_as_plugins_in_one_chain \
    test_properties.py::test_set_nginx_variables \
    test_callout_tls.py::test_upstream_block_in_tls_upstream \
    test_callout_tls.py::test_self_signed_refused \
    test_callout_tls.py::test_session_resumed_on_a_new_connection \
    test_lifecycle.py::test_reload_with_changed_plugin \
    test_lifecycle.py::test_reload_while_a_request_is_paused \
    test_lifecycle.py::test_quit_while_a_request_is_paused \
    test_callout_grpc.py::test_host_name_stream_sends_before_connected \
    test_callout_grpc.py::test_host_name_cancel_during_resolution \
    test_callout_grpc.py::test_tls_stream_both_ways \
    test_callout_grpc.py::test_tls_self_signed_unavailable \
    test_response_order.py::test_response_callbacks_in_order \
    test_response_order.py::test_trap_in_first_body_data_open \
    test_response_order.py::test_local_response_from_first_body_data \
    test_response_order.py::test_pause_at_response_headers_holds_the_body \
    test_callout_http.py::test_call_made_in_on_log_ends_with_the_request)

.PHONY: test-valgrind
test-valgrind: nginx-module $(NGX_TEST_WASMS) $(WASMS)
	@command -v valgrind >/dev/null || \
	    { echo "test-valgrind: valgrind is not installed"; exit 1; }
	PW_NGINX_VALGRIND=1 PW_NGINX_MODULE=$(CURDIR)/$(NGX_MODULE) \
	    PW_WASM_DIR=$(CURDIR)/$(WASM_OUT) \
	    PW_NGINX_WASM_DIR=$(CURDIR)/$(NGX_TEST_WASM_DIR) \
	    /usr/bin/python3 -m pytest -q -p no:cacheprovider \
	    $(NGX_VALGRIND_TESTS)
