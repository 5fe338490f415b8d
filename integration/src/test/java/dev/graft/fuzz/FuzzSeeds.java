package dev.graft.fuzz;

import dev.graft.compiler.ir.OnnxExport;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.io.OnnxAdapterFile;
import dev.graft.runtime.io.PeftAdapters;
import dev.graft.testing.TinyBertHost;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Writes the valid seeds of the fuzz corpora (small files, regenerated rather than edited):
 * run from the repository root with the integration module's test class path, e.g.
 * {@code ./mvnw -q -pl integration exec:java -Dexec.classpathScope=test
 * -Dexec.mainClass=dev.graft.fuzz.FuzzSeeds}. Findings that are fixed are added next to them
 * by Jazzer, named {@code crash-<sha1>}.
 */
public final class FuzzSeeds {
  private FuzzSeeds() {}

  public static void main(String[] args) throws IOException {
    Path root = Path.of(args.length > 0 ? args[0] : ".");
    Path integration = root.resolve("integration/src/test/resources/dev/graft/fuzz");
    Path runtime = root.resolve("runtime/src/test/resources/dev/graft/runtime/io");
    Path scratch = Files.createTempDirectory("graft-fuzz-seeds-");
    try (AdapterModel model = FuzzFixtures.open()) {
      Path folder = scratch.resolve("adapter");
      model.saveAdapter(folder);
      byte[] config = Files.readAllBytes(folder.resolve(PeftAdapters.CONFIG_FILE));
      byte[] weights = Files.readAllBytes(folder.resolve(PeftAdapters.WEIGHTS_FILE));
      Path checkpoint = scratch.resolve("seed.ckpt.safetensors");
      model.saveCheckpoint(checkpoint);
      Path onnxAdapter = scratch.resolve("seed.onnx_adapter");
      model.saveOnnxAdapter(onnxAdapter);
      Path onnxAdapterHalf = scratch.resolve("seed16.onnx_adapter");
      model.saveOnnxAdapter(onnxAdapterHalf, OnnxAdapterFile.DataType.FLOAT16);
      write(runtime.resolve("SafetensorsFuzzTestInputs/read/adapter_model.safetensors"), weights);
      for (String suffix : new String[] {"FuzzTest", "FuzzCampaign"}) {
        write(integration.resolve("AdapterFolder" + suffix + "Inputs/load/adapter_folder"),
            AdapterFolderFuzzTest.frame(config, weights));
        write(integration.resolve("Checkpoint" + suffix + "Inputs/load/checkpoint.safetensors"),
            Files.readAllBytes(checkpoint));
        write(integration.resolve("OnnxAdapter" + suffix + "Inputs/load/adapter.onnx_adapter"),
            Files.readAllBytes(onnxAdapter));
        write(integration.resolve("OnnxAdapter" + suffix + "Inputs/load/adapter16.onnx_adapter"),
            Files.readAllBytes(onnxAdapterHalf));
      }
    }
    write(integration.resolve("OnnxCompileFuzzTestInputs/compile/tiny_bert.onnx"),
        OnnxExport.write(TinyBertHost.graph(FuzzFixtures.HOST_SEED), "tiny").toByteArray());
  }

  private static void write(Path file, byte[] bytes) throws IOException {
    Files.createDirectories(file.getParent());
    Files.write(file, bytes);
    System.out.println(file + " (" + bytes.length + " bytes)");
  }
}
