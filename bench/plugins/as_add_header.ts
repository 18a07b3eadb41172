// bench_as_add_header: bench/plugins/add_header.c written with the
// AssemblyScript SDK (@solo-io/proxy-runtime): adds "x-bench: 1" to every
// response. A plugin from an SDK we did not write, for bench/nginx_instr.sh.
// Root id "bench_as"; the SDK needs a non-empty plugin configuration.
export * from "@solo-io/proxy-runtime/proxy";
import {
  RootContext, Context, registerRootContext, FilterHeadersStatusValues,
  stream_context
} from "@solo-io/proxy-runtime";

class BenchRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new Bench(context_id, this);
  }
}

class Bench extends Context {
  constructor(context_id: u32, root_context: BenchRoot) {
    super(context_id, root_context);
  }

  onResponseHeaders(count: u32, end_of_stream: bool): FilterHeadersStatusValues {
    stream_context.headers.response.add("x-bench", "1");
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((context_id: u32) => { return new BenchRoot(context_id); },
                    "bench_as");
