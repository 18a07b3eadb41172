# The store: plain C, no nginx or V8 headers (checked by check-layering).
# Its objects are part of $(LIB) through STORE_SRCS in the top Makefile;
# STORE_OBJS lets tests link exactly these objects.

STORE_OBJS := $(STORE_SRCS:%.c=$(BUILD)/%.o)
