package dev.graft.spark;

import dev.graft.runtime.AdapterGraphs;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.ModelOptions;
import java.io.Serializable;
import java.nio.file.Path;
import org.jspecify.annotations.Nullable;

/**
 * Where each executor finds a compiled graft and how it opens it: the graft's files in a folder
 * every executor can read ({@link #directory}) or its resources on the executors' class path
 * ({@link #classpath}, the generated {@code <Name>Graft} beside them), the host file where the
 * manifest's host is not found as it is, the seed and the intra-op threads. Serializable: it
 * travels with the tasks, not the graphs themselves.
 *
 * @param folder the folder (a path) or the class-path package folder ({@code dev/graft/examples})
 * @param onClasspath whether {@code folder} names a class-path folder
 * @param name the graft's name
 * @param host the host file, or null for the manifest's
 * @param seed the parameters' initialization seed (every replica the same, so they start equal)
 * @param intraOpThreads ONNX Runtime's intra-op threads per replica (0: its default)
 */
public record ReplicaSource(String folder, boolean onClasspath, String name, @Nullable String host, long seed,
    int intraOpThreads) implements Serializable {
  /** The graft {@code name}'s files in folder {@code dir}. */
  public static ReplicaSource directory(Path dir, String name) {
    return new ReplicaSource(dir.toAbsolutePath().toString(), false, name, null, ModelOptions.defaults().seed(), 0);
  }

  /** The graft {@code name}'s resources in class-path folder {@code folder}. */
  public static ReplicaSource classpath(String folder, String name) {
    return new ReplicaSource(folder, true, name, null, ModelOptions.defaults().seed(), 0);
  }

  public ReplicaSource withHost(Path file) {
    return new ReplicaSource(folder, onClasspath, name, file.toAbsolutePath().toString(), seed, intraOpThreads);
  }

  public ReplicaSource withSeed(long value) {
    return new ReplicaSource(folder, onClasspath, name, host, value, intraOpThreads);
  }

  public ReplicaSource withIntraOpThreads(int value) {
    return new ReplicaSource(folder, onClasspath, name, host, seed, value);
  }

  /** The graphs, read where this names them. */
  public AdapterGraphs graphs() {
    return onClasspath
        ? AdapterGraphs.fromClasspath(Thread.currentThread().getContextClassLoader(), folder, name)
        : AdapterGraphs.fromDirectory(Path.of(folder), name);
  }

  /** Opens the graft for training with these options. */
  public AdapterModel open() {
    ModelOptions options = ModelOptions.defaults().withSeed(seed).withIntraOpThreads(intraOpThreads);
    if (host != null) {
      options = options.withHost(Path.of(host));
    }
    return AdapterModel.open(graphs(), options);
  }
}
