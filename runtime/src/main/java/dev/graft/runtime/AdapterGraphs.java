package dev.graft.runtime;

import com.google.protobuf.TextFormat;
import dev.graft.spec.manifest.Manifest;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Objects;
import org.jspecify.annotations.Nullable;

/**
 * A compiled adapter graph named N: {@code N.infer.onnx}, {@code N.train.onnx}, {@code
 * N.update.onnx}, {@code N.manifest.textproto} and, where compiled, {@code N.gathered.onnx}, {@code
 * N.gradient.onnx} and {@code N.apply.onnx}, as
 * the compiler writes them into one package folder.
 *
 * @param name the graph name N
 * @param manifest the parsed manifest
 * @param inferenceGraph bytes of {@code N.infer.onnx}
 * @param trainGraph bytes of {@code N.train.onnx}, or {@code null} when only inference is shipped
 * @param updateGraph bytes of {@code N.update.onnx} (the linear sites' weight updates, named by the
 *     manifest's {@code site_updates}), or {@code null} when not shipped (graphs compiled before it)
 * @param mergeGraph bytes of {@code N.merge.onnx} (what a merged export fills), or {@code null}
 * @param classLoader where to look up a host given as a classpath resource name
 * @param gatheredGraph bytes of {@code N.gathered.onnx} (the multi-adapter graph a {@code
 *     serve.AdapterServer} runs), or {@code null} when it was not compiled
 * @param gradientGraph bytes of {@code N.gradient.onnx} (the training step's forward and backward,
 *     for data-parallel training; the manifest's {@code data_parallel}), or {@code null}
 * @param applyGraph bytes of {@code N.apply.onnx} (the training step's AdamW update on given
 *     gradients), or {@code null}
 */
public record AdapterGraphs(
    String name, Manifest manifest, byte[] inferenceGraph, byte @Nullable [] trainGraph,
    byte @Nullable [] updateGraph, byte @Nullable [] mergeGraph, ClassLoader classLoader,
    byte @Nullable [] gatheredGraph, byte @Nullable [] gradientGraph, byte @Nullable [] applyGraph) {
  public static final String INFER_SUFFIX = ".infer.onnx";
  public static final String TRAIN_SUFFIX = ".train.onnx";
  public static final String UPDATE_SUFFIX = ".update.onnx";
  public static final String MERGE_SUFFIX = ".merge.onnx";
  public static final String MANIFEST_SUFFIX = ".manifest.textproto";
  public static final String GATHERED_SUFFIX = ".gathered.onnx";
  public static final String GRADIENT_SUFFIX = ".gradient.onnx";
  public static final String APPLY_SUFFIX = ".apply.onnx";

  public AdapterGraphs(String name, Manifest manifest, byte[] inferenceGraph, byte @Nullable [] trainGraph,
      byte @Nullable [] updateGraph, byte @Nullable [] mergeGraph, ClassLoader classLoader) {
    this(name, manifest, inferenceGraph, trainGraph, updateGraph, mergeGraph, classLoader, null);
  }

  public AdapterGraphs(String name, Manifest manifest, byte[] inferenceGraph, byte @Nullable [] trainGraph,
      byte @Nullable [] updateGraph, byte @Nullable [] mergeGraph, ClassLoader classLoader,
      byte @Nullable [] gatheredGraph) {
    this(name, manifest, inferenceGraph, trainGraph, updateGraph, mergeGraph, classLoader, gatheredGraph, null, null);
  }

  public AdapterGraphs {
    Objects.requireNonNull(name, "name");
    Objects.requireNonNull(manifest, "manifest");
    Objects.requireNonNull(inferenceGraph, "inferenceGraph");
    Objects.requireNonNull(classLoader, "classLoader");
  }

  /** Graphs given in memory (tests, or graphs compiled at run time by the builder DSL). */
  public static AdapterGraphs of(Manifest manifest, byte[] inferenceGraph, byte @Nullable [] trainGraph) {
    return of(manifest, inferenceGraph, trainGraph, null);
  }

  /** Graphs given in memory, the update graph included. */
  public static AdapterGraphs of(Manifest manifest, byte[] inferenceGraph, byte @Nullable [] trainGraph,
      byte @Nullable [] updateGraph) {
    return of(manifest, inferenceGraph, trainGraph, updateGraph, null);
  }

  /** Graphs given in memory, the update and merged graphs included. */
  public static AdapterGraphs of(Manifest manifest, byte[] inferenceGraph, byte @Nullable [] trainGraph,
      byte @Nullable [] updateGraph, byte @Nullable [] mergeGraph) {
    return of(manifest, inferenceGraph, trainGraph, updateGraph, mergeGraph, null);
  }

  /** Graphs given in memory, the update, merged and gathered multi-adapter graphs included. */
  public static AdapterGraphs of(Manifest manifest, byte[] inferenceGraph, byte @Nullable [] trainGraph,
      byte @Nullable [] updateGraph, byte @Nullable [] mergeGraph, byte @Nullable [] gatheredGraph) {
    return new AdapterGraphs(manifest.getName(), manifest, inferenceGraph, trainGraph, updateGraph, mergeGraph,
        defaultLoader(), gatheredGraph);
  }

  /** Graphs given in memory, every graph included (the data-parallel gradient and apply graphs too). */
  public static AdapterGraphs of(Manifest manifest, byte[] inferenceGraph, byte @Nullable [] trainGraph,
      byte @Nullable [] updateGraph, byte @Nullable [] mergeGraph, byte @Nullable [] gatheredGraph,
      byte @Nullable [] gradientGraph, byte @Nullable [] applyGraph) {
    return new AdapterGraphs(manifest.getName(), manifest, inferenceGraph, trainGraph, updateGraph, mergeGraph,
        defaultLoader(), gatheredGraph, gradientGraph, applyGraph);
  }

  /** Reads N's resources from the package of {@code anchor} (the generated class beside them). */
  public static AdapterGraphs fromClasspath(Class<?> anchor, String name) {
    String pkg = anchor.getPackageName().replace('.', '/');
    ClassLoader loader = anchor.getClassLoader() != null ? anchor.getClassLoader() : defaultLoader();
    return fromClasspath(loader, pkg, name);
  }

  /** Reads N's resources from {@code folder} (e.g. {@code dev/graft/examples/sentiment}) of a class loader. */
  public static AdapterGraphs fromClasspath(ClassLoader loader, String folder, String name) {
    String prefix = folder.isEmpty() || folder.endsWith("/") ? folder + name : folder + "/" + name;
    byte[] manifestBytes = resource(loader, prefix + MANIFEST_SUFFIX, true);
    Manifest manifest = parseManifest(prefix + MANIFEST_SUFFIX, new String(manifestBytes, StandardCharsets.UTF_8));
    byte[] infer = resource(loader, prefix + INFER_SUFFIX, true);
    byte[] train = resource(loader, prefix + TRAIN_SUFFIX, false);
    byte[] update = resource(loader, prefix + UPDATE_SUFFIX, false);
    byte[] merge = resource(loader, prefix + MERGE_SUFFIX, false);
    byte[] gathered = resource(loader, prefix + GATHERED_SUFFIX, false);
    byte[] gradient = resource(loader, prefix + GRADIENT_SUFFIX, false);
    byte[] apply = resource(loader, prefix + APPLY_SUFFIX, false);
    return new AdapterGraphs(name, manifest, infer, train, update, merge, loader, gathered, gradient, apply);
  }

  /** Reads N's files from a directory. */
  public static AdapterGraphs fromDirectory(Path dir, String name) {
    try {
      Path m = dir.resolve(name + MANIFEST_SUFFIX);
      Manifest manifest = parseManifest(m.toString(), Files.readString(m, StandardCharsets.UTF_8));
      byte[] infer = Files.readAllBytes(dir.resolve(name + INFER_SUFFIX));
      Path t = dir.resolve(name + TRAIN_SUFFIX);
      byte[] train = Files.exists(t) ? Files.readAllBytes(t) : null;
      Path u = dir.resolve(name + UPDATE_SUFFIX);
      byte[] update = Files.exists(u) ? Files.readAllBytes(u) : null;
      Path mg = dir.resolve(name + MERGE_SUFFIX);
      byte[] merge = Files.exists(mg) ? Files.readAllBytes(mg) : null;
      Path g = dir.resolve(name + GATHERED_SUFFIX);
      byte[] gathered = Files.exists(g) ? Files.readAllBytes(g) : null;
      Path gr = dir.resolve(name + GRADIENT_SUFFIX);
      byte[] gradient = Files.exists(gr) ? Files.readAllBytes(gr) : null;
      Path ap = dir.resolve(name + APPLY_SUFFIX);
      byte[] apply = Files.exists(ap) ? Files.readAllBytes(ap) : null;
      return new AdapterGraphs(name, manifest, infer, train, update, merge, defaultLoader(), gathered, gradient,
          apply);
    } catch (IOException e) {
      throw new GraftException(RuntimeErrorCode.IO, "cannot read adapter graph " + name + " from " + dir + ": " + e, e);
    }
  }

  /** Parses a manifest in protobuf text format. */
  public static Manifest parseManifest(String source, String text) {
    try {
      Manifest.Builder b = Manifest.newBuilder();
      TextFormat.merge(text, b);
      return b.build();
    } catch (TextFormat.ParseException e) {
      throw new FormatException(source, "not a valid Graft manifest: " + e.getMessage(), e);
    }
  }

  private static byte @Nullable [] resource(ClassLoader loader, String path, boolean required) {
    try (InputStream in = loader.getResourceAsStream(path)) {
      if (in == null) {
        if (required) {
          throw new GraftException(RuntimeErrorCode.IO, "resource '" + path + "' is not on the classpath");
        }
        return null;
      }
      return in.readAllBytes();
    } catch (IOException e) {
      throw new GraftException(RuntimeErrorCode.IO, "cannot read resource '" + path + "': " + e, e);
    }
  }

  private static ClassLoader defaultLoader() {
    ClassLoader l = Thread.currentThread().getContextClassLoader();
    return l != null ? l : AdapterGraphs.class.getClassLoader();
  }
}
