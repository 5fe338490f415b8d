package dev.graft.tools.serve;

import dev.graft.runtime.AdapterGraphs;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.serve.AdapterServer;
import dev.graft.runtime.serve.HttpEndpoint;
import dev.graft.runtime.text.TextTokenizer;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.jspecify.annotations.Nullable;

/**
 * Serves a graft's adapters over HTTP, mixed per row in one batch ({@link AdapterServer} behind
 * an {@link HttpEndpoint}): one command opens the graft's gathered graph on its host, registers
 * the adapters named on the command line and listens. See {@link #USAGE}.
 */
public final class ServeCommand implements AutoCloseable {
  static final String USAGE = String.join("\n",
      "usage: ServeCommand --graft <folder or class-path folder> --name <graft> [--host <host.onnx>]",
      "                    [--tokenizer <tokenizer.json>] [--max-length <n>] [--adapter <name>=<folder>]...",
      "                    [--adapter-root <folder>] [--port <n>] [--bind <address>]",
      "                    [--batch-delay-ms <ms>] [--batch-rows <n>] [--max-body-bytes <n>] [--max-adapters <n>]",
      "",
      "Serves the adapters of one graft compiled with GraphVariant.GATHERED, many adapters per batch.",
      "",
      "  --graft <folder>        the folder with <graft>.manifest.textproto, .infer.onnx and .gathered.onnx",
      "                          (a directory; otherwise a class-path folder such as dev/graft/examples)",
      "  --name <graft>          the graft's name",
      "  --host <host.onnx>      the host model (default: the one the manifest names)",
      "  --tokenizer <file>      the host's tokenizer.json (a file, else a class-path resource such as",
      "                          all-minilm-l6-v2-tokenizer.json), for {\"texts\": [...]} requests",
      "  --max-length <n>        tokens per text at most (default 128)",
      "  --adapter <name>=<dir>  a PEFT adapter folder saved for this graft, registered as <name> (repeatable)",
      "  --adapter-root <dir>    allow POST /v1/adapters {\"name\", \"path\"} with paths inside this folder",
      "  --port <n>              the port (default 8080; 0: any free port)",
      "  --bind <address>        the address to listen on (default 127.0.0.1)",
      "  --batch-delay-ms <ms>   micro-batching: how long a request may wait for others (default 2)",
      "  --batch-rows <n>        micro-batching: rows a batch holds at most (default 64; 1: no batching)",
      "  --max-body-bytes <n>    the largest request body (default 1048576)",
      "  --max-adapters <n>      adapters registered at most (default 1024)",
      "",
      "Endpoints: POST /v1/predict, GET and POST /v1/adapters, DELETE /v1/adapters/{name}, GET /health.");

  private final AdapterServer server;
  private final HttpEndpoint endpoint;
  private final @Nullable TextTokenizer tokenizer;

  private ServeCommand(AdapterServer server, HttpEndpoint endpoint, @Nullable TextTokenizer tokenizer) {
    this.server = server;
    this.endpoint = endpoint;
    this.tokenizer = tokenizer;
  }

  /** A command line that is not one of {@link #USAGE}'s forms. */
  static final class Invalid extends RuntimeException {
    private static final long serialVersionUID = 1L;

    Invalid(String message) {
      super(message);
    }
  }

  /** Parses {@code args}, opens the server, registers the adapters and starts listening. */
  public static ServeCommand start(String... args) {
    Map<String, String> single = new LinkedHashMap<>();
    Map<String, Path> adapters = new LinkedHashMap<>();
    List<String> known = List.of("--graft", "--name", "--host", "--tokenizer", "--max-length", "--adapter-root",
        "--port", "--bind", "--batch-delay-ms", "--batch-rows", "--max-body-bytes", "--max-adapters");
    for (int i = 0; i < args.length; i++) {
      String a = args[i];
      if (i + 1 >= args.length) {
        throw new Invalid(a.startsWith("--") ? a + " needs a value" : "unexpected argument '" + a + "'");
      }
      String v = args[++i];
      if (a.equals("--adapter")) {
        int eq = v.indexOf('=');
        if (eq <= 0 || eq == v.length() - 1) {
          throw new Invalid("--adapter takes <name>=<folder>, got '" + v + "'");
        }
        if (adapters.put(v.substring(0, eq), Path.of(v.substring(eq + 1))) != null) {
          throw new Invalid("adapter '" + v.substring(0, eq) + "' is given twice");
        }
      } else if (known.contains(a)) {
        if (single.put(a, v) != null) {
          throw new Invalid(a + " is given twice");
        }
      } else {
        throw new Invalid("unknown option '" + a + "'");
      }
    }
    String graft = required(single, "--graft");
    String name = required(single, "--name");
    AdapterGraphs graphs = Files.isDirectory(Path.of(graft))
        ? AdapterGraphs.fromDirectory(Path.of(graft), name)
        : AdapterGraphs.fromClasspath(ServeCommand.class.getClassLoader(), graft, name);
    ModelOptions options = ModelOptions.defaults().withTraining(false);
    if (single.containsKey("--host")) {
      options = options.withHost(Path.of(single.get("--host")));
    }
    HttpEndpoint.Options http = HttpEndpoint.Options.defaults()
        .withBatching(Duration.ofMillis(integer(single, "--batch-delay-ms", 2)), integer(single, "--batch-rows", 64))
        .withMaxBodyBytes(integer(single, "--max-body-bytes", 1 << 20));
    if (single.containsKey("--adapter-root")) {
      http = http.withAdapterRoot(Path.of(single.get("--adapter-root")));
    }
    int port = integer(single, "--port", 8080);
    String tokenizerName = single.get("--tokenizer");
    int maxLength = integer(single, "--max-length", 128);
    TextTokenizer tokenizer = tokenizerName == null ? null
        : Files.isRegularFile(Path.of(tokenizerName)) ? TextTokenizer.fromFile(Path.of(tokenizerName), maxLength)
        : TextTokenizer.fromClasspath(ServeCommand.class.getClassLoader(), tokenizerName, maxLength);
    AdapterServer server = null;
    try {
      server = AdapterServer.open(graphs, options,
          integer(single, "--max-adapters", AdapterServer.DEFAULT_MAX_ADAPTERS));
      for (Map.Entry<String, Path> e : adapters.entrySet()) {
        server.register(e.getKey(), e.getValue());
      }
      HttpEndpoint endpoint = HttpEndpoint.start(server, graphs.manifest(), tokenizer,
          new InetSocketAddress(single.getOrDefault("--bind", "127.0.0.1"), port), http);
      return new ServeCommand(server, endpoint, tokenizer);
    } catch (RuntimeException e) {
      if (server != null) {
        server.close();
      }
      if (tokenizer != null) {
        tokenizer.close();
      }
      throw e;
    }
  }

  private static String required(Map<String, String> args, String option) {
    String v = args.get(option);
    if (v == null) {
      throw new Invalid(option + " is required");
    }
    return v;
  }

  private static int integer(Map<String, String> args, String option, int fallback) {
    String v = args.get(option);
    if (v == null) {
      return fallback;
    }
    try {
      int n = Integer.parseInt(v);
      if (n < 0) {
        throw new Invalid(option + " must not be negative, got " + v);
      }
      return n;
    } catch (NumberFormatException e) {
      throw new Invalid(option + " takes an integer, got '" + v + "'");
    }
  }

  /** The port listened on. */
  public int port() {
    return endpoint.port();
  }

  /** The adapters registered now. */
  public List<String> adapters() {
    return new ArrayList<>(server.adapters());
  }

  @Override
  public void close() {
    endpoint.close();
    server.close();
    if (tokenizer != null) {
      tokenizer.close();
    }
  }

  /** Starts serving and blocks until the process is stopped; exit status 2 for bad arguments or a graft that cannot be served. */
  public static void main(String[] args) {
    if (args.length == 0 || List.of(args).contains("--help")) {
      System.out.println(USAGE);
      return;
    }
    ServeCommand serve;
    try {
      serve = start(args);
    } catch (Invalid e) {
      System.err.println("error: " + e.getMessage() + "\n\n" + USAGE);
      System.exit(2);
      return;
    } catch (GraftException e) {
      System.err.println("error: " + e.getMessage());
      System.exit(2);
      return;
    }
    Runtime.getRuntime().addShutdownHook(new Thread(serve::close));
    System.out.println("serving adapters " + serve.adapters() + " on port " + serve.port()
        + " (POST /v1/predict, GET/POST /v1/adapters, DELETE /v1/adapters/{name}, GET /health)");
  }
}
