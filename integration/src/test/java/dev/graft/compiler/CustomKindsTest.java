package dev.graft.compiler;

import dev.graft.testing.Adapters;
import dev.graft.testing.CustomKinds;
import dev.graft.testing.InferenceRun;
import dev.graft.testing.TinyBertHost;
import dev.graft.testing.WholeStepCheck;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OrtException;
import dev.graft.dsl.Graft;
import dev.graft.compiler.kinds.AdapterKind;
import dev.graft.compiler.kinds.AdapterKindLoadException;
import dev.graft.compiler.kinds.AdapterKinds;
import dev.graft.compiler.kinds.lora.LoraKind;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import java.io.IOException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.Function;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Adapter kinds written with the op DSL ({@link CustomKinds}): found as services, whole training
 * steps against central differences on the float64 tiny BERT, the DSL's LoRA against the
 * built-in one, and each definition fault as a diagnostic of the declaration.
 */
class CustomKindsTest {
  private static final Graph HOST = TinyBertHost.graph(11, TensorType.DOUBLE);

  private static double check(AdapterSpec adapter) throws OrtException {
    try (WholeStepCheck c = WholeStepCheck.classification(HOST, adapter)) {
      double worst = c.assertGradientsMatch(1e-6, 1e-7, 1e-5);
      assertTrue(worst < 1e-7, "max error " + worst);
      System.out.printf("%s %s: max FD error %.3g%n", adapter.kind(), adapter.options(), worst);
      return worst;
    }
  }

  @Test
  void kindsListedAsServicesAreRegisteredAfterTheBuiltInOnes() {
    AdapterKind gated = AdapterKinds.byId("test_gated_lora").orElseThrow();
    assertInstanceOf(CustomKinds.GatedLora.class, gated);
    assertEquals(gated, AdapterKinds.byAnnotation("dev.graft.compiler.test.test_gated_lora").orElseThrow());
    List<String> ids = AdapterKinds.all().stream().map(AdapterKind::id).toList();
    assertEquals("lora", ids.get(0));
    assertTrue(ids.indexOf("prefix_tuning") < ids.indexOf("test_gated_lora"), ids.toString());
    assertEquals(List.of("test_gated_lora", "test_dsl_lora", "test_slice_div", "test_mixture"),
        ids.subList(ids.indexOf("test_gated_lora"), ids.indexOf("test_gated_lora") + 4));
  }

  @Test
  void aServiceWithTheIdOfAnotherKindIsAnErrorNamingBothClasses(@TempDir Path dir) throws IOException {
    Path services = dir.resolve("META-INF/services/" + AdapterKind.class.getName());
    Files.createDirectories(services.getParent());
    Files.writeString(services, CustomKinds.DuplicateOfLora.class.getName() + "\n", StandardCharsets.UTF_8);
    try (URLClassLoader loader = new URLClassLoader(new URL[] {dir.toUri().toURL()}, getClass().getClassLoader())) {
      AdapterKindLoadException e = assertThrows(AdapterKindLoadException.class, () -> AdapterKinds.discover(loader));
      assertEquals("[GRAFT094] cannot register adapter kind 'lora' (" + CustomKinds.DuplicateOfLora.class.getName()
          + "): adapter kind " + LoraKind.class.getName() + " has the same id; give one of them another id, or take"
          + " one jar off the class path", e.getMessage());
      assertEquals(ErrorCode.ADAPTER_KIND_CONFLICT, e.diagnostic().code());
    }
  }

  @Test
  void aServiceThatCannotBeLoadedIsAnError(@TempDir Path dir) throws IOException {
    Path services = dir.resolve("META-INF/services/" + AdapterKind.class.getName());
    Files.createDirectories(services.getParent());
    Files.writeString(services, "com.example.NoSuchKind\n", StandardCharsets.UTF_8);
    try (URLClassLoader loader = new URLClassLoader(new URL[] {dir.toUri().toURL()}, getClass().getClassLoader())) {
      AdapterKindLoadException e = assertThrows(AdapterKindLoadException.class, () -> AdapterKinds.discover(loader));
      assertTrue(e.getMessage().startsWith("[GRAFT094] cannot register adapter kind '?'"), e.getMessage());
      assertTrue(e.getMessage().contains("com.example.NoSuchKind"), e.getMessage());
    }
  }

  @Test
  void gatedLoraWholeStepMatchesCentralDifferences() throws OrtException {
    check(Adapters.of("test_gated_lora", ".*/attention/self/(query|value)/MatMul", Map.of("rank", 2, "alpha", 3)));
  }

  @Test
  void slicesAndDivisionWholeStepMatchesCentralDifferences() throws OrtException {
    check(Adapters.of("test_slice_div", ".*/(query|output/dense)/MatMul", Map.of("rank", 3)));
  }

  @Test
  void layerNormSoftmaxReductionsAndTransposeWholeStepMatchesCentralDifferences() throws OrtException {
    check(Adapters.of("test_mixture", ".*/layer\\.1/attention/self/value/MatMul", Map.of("rank", 2)));
  }

  @Test
  void parametersNodesAndSaveKeysAreNamedUnderTheSiteAndKind() {
    Manifest m = Graft.host(TinyBertHost.host(3))
        .adapter("test_gated_lora", ".*/layer\\.0/attention/self/query/MatMul", o -> o.set("rank", 4))
        .classification(2).compile().manifest();
    List<Parameter> ps = m.getParametersList().subList(0, 3);
    String site = "encoder.layer.0.attention.self.query";
    assertEquals(List.of(site + ".test_gated_lora.A", site + ".test_gated_lora.B", site + ".test_gated_lora.gate"),
        ps.stream().map(Parameter::getName).toList());
    assertEquals(List.of(8L, 4L), ps.get(0).getShapeList());
    assertEquals(Init.KAIMING_UNIFORM, ps.get(0).getInit());
    assertEquals(8.0, ps.get(0).getInitScale());
    assertEquals(Init.ZEROS, ps.get(1).getInit());
    assertTrue(ps.get(2).getNoDecay());
    assertFalse(ps.get(0).getNoDecay());
    assertEquals("base_model.model." + site + ".test_gated_lora.gate", ps.get(2).getSaveKey());
    assertEquals(List.of(8L), ps.get(2).getSaveShapeList());
    assertEquals("test_gated_lora", m.getAdapters(0).getKind());
    assertEquals(Map.of("rank", "4", "alpha", "4"), m.getAdapters(0).getOptionsMap());
    Graph inference = dev.graft.compiler.ir.OnnxImport.read(Graft.host(TinyBertHost.host(3))
        .adapter("test_gated_lora", ".*/layer\\.0/attention/self/query/MatMul", o -> {})
        .classification(2).compile().inference());
    assertTrue(inference.nodes().stream().anyMatch(n -> n.name().equals("/encoder/layer.0/attention/self/query/"
        + "test_gated_lora/Sigmoid")), "nodes under /<module path>/<kind id>/: "
        + inference.nodes().stream().map(dev.graft.compiler.ir.Node::name).filter(n -> n.contains("gated")).toList());
  }

  /** The same seeded values for the DSL's and the built-in LoRA's factors at the same site. */
  private static double[] loraValues(Parameter p) {
    String role = p.getName().endsWith("A") ? "A" : p.getName().endsWith("B") ? "B" : p.getName();
    String key = p.getSite() + "/" + role;
    double[] v = new double[WholeStepCheck.size(p)];
    Random r = new Random(key.hashCode());
    for (int i = 0; i < v.length; i++) {
      v[i] = 0.3 * r.nextGaussian();
    }
    return v;
  }

  @Test
  void theDslLoraIsTheBuiltInLora() throws OrtException {
    CompiledGraft builtIn = InferenceRun.compile(HOST, Adapters.lora("", 4, 6));
    CompiledGraft dsl = InferenceRun.compile(HOST, Adapters.of("test_dsl_lora", "", Map.of("rank", 4, "alpha", 6)));
    List<Parameter> a = builtIn.manifest().getParametersList();
    List<Parameter> b = dsl.manifest().getParametersList();
    assertEquals(a.size(), b.size());
    for (int i = 0; i < a.size(); i++) {
      assertEquals(a.get(i).getSite(), b.get(i).getSite());
      assertEquals(a.get(i).getShapeList(), b.get(i).getShapeList());
      assertEquals(a.get(i).getInit(), b.get(i).getInit(), a.get(i).getName());
      assertEquals(a.get(i).getInitScale(), b.get(i).getInitScale(), a.get(i).getName());
      assertEquals(a.get(i).getSaveKey(), b.get(i).getSaveKey());
      assertEquals(a.get(i).getSaveShapeList(), b.get(i).getSaveShapeList());
      assertEquals(a.get(i).getSaveTransposed(), b.get(i).getSaveTransposed());
    }
    Function<Parameter, double[]> values = CustomKindsTest::loraValues;
    double[] expected = InferenceRun.logits(HOST, builtIn, values);
    double[] actual = InferenceRun.logits(HOST, dsl, values);
    assertArrayEquals(expected, actual, 1e-12);
    double[] host = InferenceRun.logits(HOST, InferenceRun.compile(HOST), values);
    assertTrue(Math.abs(host[0] - expected[0]) > 1e-3, "the update takes part: " + host[0] + " vs " + expected[0]);
  }

  private static Diagnostic onlyError(String kind, Map<String, Object> options) {
    GraftCompileException e = assertThrows(GraftCompileException.class, () -> InferenceRun.compile(HOST,
        new AdapterSpec(kind, ".*/query/MatMul", List.of(), options, "the declaration")));
    assertEquals(1, e.diagnostics().size(), e.getMessage());
    Diagnostic d = e.diagnostics().get(0);
    assertEquals("the declaration", d.source());
    return d;
  }

  @Test
  void aShapeMismatchNamesTheKindTheSiteTheOpAndBothShapes() {
    Diagnostic d = onlyError("test_bad_shape", Map.of("rank", 3));
    assertEquals(ErrorCode.DEFINITION_SHAPE_MISMATCH, d.code());
    assertEquals("[GRAFT090] Test test_bad_shape definition at encoder.layer.0.attention.self.query: times (*) needs"
        + " operands whose shapes broadcast (equal, or 1, aligned from the last axis), got [batch, sequence, 8] and"
        + " [3]", d.message());
  }

  @Test
  void readingAnUndeclaredOptionNamesTheOptionsThereAre() {
    Diagnostic d = onlyError("test_unknown_option", Map.of());
    assertEquals("[GRAFT091] Test test_unknown_option definition reads option 'rnk' as an integer, but the kind"
        + " declares no such option; its options are [rank: an integer, alpha: a number]", d.message());
  }

  @Test
  void aParameterDeclaredTwiceIsAnError() {
    Diagnostic d = onlyError("test_duplicate_parameter", Map.of());
    assertEquals("[GRAFT092] Test test_duplicate_parameter definition declares parameter 's' twice: first [8],"
        + " then [1]", d.message());
  }

  @Test
  void aResultOfAnotherShapeThanTheValueIsAnError() {
    Diagnostic d = onlyError("test_wrong_result", Map.of("rank", 2));
    assertEquals("[GRAFT093] Test test_wrong_result definition at encoder.layer.0.attention.self.query: define must"
        + " return the adapted value, of the value's shape [batch, sequence, 8], got [batch, sequence, 2]",
        d.message());
  }
}
