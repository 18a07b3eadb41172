// as_headers: an AssemblyScript plugin (@solo-io/proxy-runtime 0.1.8).
// Logs every request header at info level ("as_headers: request NAME: VALUE")
// and adds a response header taken from the plugin configuration:
// "name: value" adds that header, anything else adds "x-as-config: <config>".
// Root id: "as_headers". Like every plugin of this SDK it needs a non-empty
// configuration and the host's plugin_root_id property to name its root id.
export * from "@solo-io/proxy-runtime/proxy";
import {
  RootContext, Context, registerRootContext, FilterHeadersStatusValues,
  stream_context, log, LogLevelValues
} from "@solo-io/proxy-runtime";

class HeadersRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new Headers(context_id, this);
  }
}

class Headers extends Context {
  constructor(context_id: u32, root_context: HeadersRoot) {
    super(context_id, root_context);
  }

  onRequestHeaders(count: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const headers = stream_context.headers.request.get_headers();
    for (let i = 0; i < headers.length; i++) {
      const name = String.UTF8.decode(headers[i].key);
      const value = String.UTF8.decode(headers[i].value);
      log(LogLevelValues.info, "as_headers: request " + name + ": " + value);
    }
    return FilterHeadersStatusValues.Continue;
  }

  onResponseHeaders(count: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const config = this.root_context.getConfiguration();
    const colon = config.indexOf(":");
    if (colon > 0) {
      stream_context.headers.response.add(config.substring(0, colon).trim(),
                                          config.substring(colon + 1).trim());
    } else {
      stream_context.headers.response.add("x-as-config", config);
    }
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((context_id: u32) => { return new HeadersRoot(context_id); },
                    "as_headers");
