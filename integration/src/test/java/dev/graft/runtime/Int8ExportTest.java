package dev.graft.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.dsl.Graft;
import dev.graft.runtime.export.ExportOptions;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import dev.graft.testing.TinyBertHost;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The merged export of LoRA on the int8 tiny host: with requireMerged it is refused, naming the
 * int8 weight; without, the LoRA stays an adapter beside the int8 host weights (no float copy of
 * them), and a bare ONNX Runtime session gives predict's logits.
 */
class Int8ExportTest {
  @TempDir Path dir;

  @Test
  void loraOnInt8SitesExportsUnmergedBesideTheInt8Weights() throws Exception {
    Path host = dir.resolve("tiny-int8.onnx");
    Files.write(host, OnnxExport.write(TinyBertHost.int8Graph(5), "tiny-int8").toByteArray());
    CompiledGraft graft = Graft.host(dev.graft.compiler.HostModel.read(host))
        .lora(".*/attention/self/(query|value)/MatMul_quant", l -> l.rank(2)).classification(2).compile();
    Map<String, long[][]> inputs = new LinkedHashMap<>();
    inputs.put("input_ids", new long[][] {{3, 7, 12, 8, 1}, {5, 9, 13, 0, 0}});
    inputs.put("attention_mask", new long[][] {{1, 1, 1, 1, 1}, {1, 1, 1, 0, 0}});
    inputs.put("token_type_ids", new long[][] {{0, 0, 0, 1, 1}, {0, 0, 0, 0, 0}});
    Path out = dir.resolve("export");
    float[][] expected;
    try (AdapterModel model = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(3).withHost(host))) {
      ExportFixtures.randomize(model, 11);
      expected = model.predict(inputs);
      GraftException e = assertThrows(GraftException.class,
          () -> model.exportMerged(dir.resolve("refused"), ExportOptions.defaults().withRequireMerged(true)));
      assertTrue(e.getMessage().contains("is int8 (MatMulInteger): a merged weight W + ΔW would be a float copy"),
          e.getMessage());
      model.exportMerged(out, ExportOptions.defaults());
    }
    ModelProto m = ModelProto.parseFrom(Files.readAllBytes(out.resolve("model.onnx")));
    List<TensorProto> inits = m.getGraph().getInitializerList();
    assertTrue(inits.stream().anyMatch(t -> t.getName().equals("encoder.layer.0.attention.self.query.weight_quantized")
        && t.getDataType() == 3), "the int8 weight is exported as int8");
    assertTrue(inits.stream().noneMatch(t -> t.getDataType() == 1 && t.getDimsCount() == 2 && t.getDims(0) == 8
        && t.getDims(1) == 8 && t.getName().contains("weight") && !t.getName().contains("lora")),
        "no float copy of an 8 × 8 host weight");
    ExportFixtures.BareResult r = ExportFixtures.bareRun(out.resolve("model.onnx"), inputs, dir);
    double worst = ExportFixtures.maxDifference(expected, r.rows(graft.manifest().getLogits(), 2));
    System.out.printf("Int8ExportTest: max |export − predict| %.3g%n", worst);
    assertEquals(0, worst, 1e-5);
  }
}
