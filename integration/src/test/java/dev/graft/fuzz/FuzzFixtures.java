package dev.graft.fuzz;

import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.HostModel;
import dev.graft.dsl.Graft;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.TrainingStateSnapshot;
import dev.graft.testing.TinyBertHost;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * What the fuzz targets share: the tiny BERT host of {@code dev.graft.testing}, a LoRA graft on
 * it (rank 2 on query and value, a 2-label head), one open model per JVM, a scratch folder, and
 * the oracle for refused loads.
 */
final class FuzzFixtures {
  static final long HOST_SEED = 1;
  static final long MODEL_SEED = 7;

  private FuzzFixtures() {}

  static HostModel host() {
    return TinyBertHost.host(HOST_SEED);
  }

  static Graft declaration(HostModel host) {
    return Graft.host(host).name("Fuzz")
        .lora(".*/attention/self/(query|value)/MatMul", l -> l.rank(2).alpha(4))
        .classification(2);
  }

  /** The graft, compiled once per JVM. */
  static CompiledGraft graft() {
    return Holder.GRAFT;
  }

  /** A model of the graft, opened once per JVM (the targets reuse it: a failed load must leave it as it was). */
  static AdapterModel model() {
    return Holder.MODEL;
  }

  static AdapterModel open() {
    return AdapterModel.open(Graft.graphs(graft()), ModelOptions.defaults().withSeed(MODEL_SEED).withHost(Holder.HOST));
  }

  /** A fresh scratch folder, deleted at exit. */
  static Path scratch(String name) {
    try {
      Path dir = Files.createTempDirectory("graft-fuzz-" + name + "-");
      dir.toFile().deleteOnExit();
      return dir;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** The oracle for a refused load: the refusal has a code and the training state is what it was before. */
  static void checkRefusal(GraftException refused, AdapterModel model, TrainingStateSnapshot before) {
    if (refused.getCode() == null || refused.getCode().isEmpty()) {
      throw new AssertionError("a refusal without a code", refused);
    }
    String changed = before.differences(TrainingStateSnapshot.of(model));
    if (!changed.isEmpty()) {
      throw new AssertionError("a refused load changed the model's state: " + changed, refused);
    }
  }

  private static Path writeHost() {
    try {
      return Files.write(scratch("host").resolve("tiny.onnx"), host().model().toByteArray());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static final class Holder {
    static final CompiledGraft GRAFT = declaration(host()).compile();
    static final Path HOST = writeHost();
    static final AdapterModel MODEL = open();
  }
}
