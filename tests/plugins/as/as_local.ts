// as_local: an AssemblyScript plugin (@solo-io/proxy-runtime 0.1.8) that
// answers locally. A request whose :path equals the plugin configuration
// (e.g. "/forbidden") gets a local 403 with body "forbidden by as_local\n"
// and header x-as-local: 1; other requests pass. Root id: "as_local".
export * from "@solo-io/proxy-runtime/proxy";
import {
  RootContext, Context, registerRootContext, FilterHeadersStatusValues,
  stream_context, send_local_response, GrpcStatusValues, HeaderPair, log,
  LogLevelValues
} from "@solo-io/proxy-runtime";

class LocalRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new Local(context_id, this);
  }
}

class Local extends Context {
  constructor(context_id: u32, root_context: LocalRoot) {
    super(context_id, root_context);
  }

  onRequestHeaders(count: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const path = stream_context.headers.request.get(":path");
    if (path != this.root_context.getConfiguration()) {
      return FilterHeadersStatusValues.Continue;
    }
    log(LogLevelValues.info, "as_local: denying " + path);
    const headers: HeaderPair[] = [
      new HeaderPair(String.UTF8.encode("x-as-local"), String.UTF8.encode("1"))
    ];
    send_local_response(403, "as_local", String.UTF8.encode("forbidden by as_local\n"),
                        headers, GrpcStatusValues.InvalidCode);
    return FilterHeadersStatusValues.StopIteration;
  }
}

registerRootContext((context_id: u32) => { return new LocalRoot(context_id); },
                    "as_local");
