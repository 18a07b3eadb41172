# The nginx dynamic module, built against Debian's nginx-dev source tree
# (../shared/PLATFORM.md). Not built under SAN=1: Debian's nginx binary is
# not instrumented, so the workers are checked with valgrind instead.

NGX_SRC := /usr/share/nginx/src
NGX_BUILD := $(BUILD)/nginx
NGX_MODULE := $(NGX_BUILD)/ngx_http_pw_module.so
NGX_MOD_SRCS := $(wildcard nginx/*.c nginx/*.h) nginx/config

ifneq ($(SAN),1)
BINS += $(NGX_MODULE)
endif

.PHONY: nginx-module
nginx-module: $(NGX_MODULE)

$(NGX_BUILD)/Makefile: nginx/config nginx/module.mk
	@mkdir -p $(NGX_BUILD)
	cd $(NGX_SRC) && PW_ROOT=$(CURDIR) PW_BUILD=$(CURDIR)/$(BUILD) \
	    PW_LIBNODE_LIB=$(LIBNODE_LIB) bash -c '. ./conf_flags; ./configure \
	    --with-cc-opt="$$(dpkg-buildflags --get CFLAGS) -fPIC -fno-plt -fno-semantic-interposition $$(dpkg-buildflags --get CPPFLAGS)" \
	    --with-ld-opt="$$(dpkg-buildflags --get LDFLAGS) -fPIC" \
	    "$${NGX_CONF_FLAGS[@]}" --add-dynamic-module=$(CURDIR)/nginx \
	    --builddir=$(CURDIR)/$(NGX_BUILD)' > $(CURDIR)/$(NGX_BUILD)/configure.log 2>&1 \
	    || { tail -30 $(CURDIR)/$(NGX_BUILD)/configure.log; exit 1; }

# nginx's own Makefile does not know libpw.a: relink whenever it changed.
$(NGX_MODULE): $(NGX_BUILD)/Makefile $(NGX_MOD_SRCS) $(LIB)
	rm -f $@
	$(MAKE) -s -f $(CURDIR)/$(NGX_BUILD)/Makefile -C $(NGX_SRC) modules
