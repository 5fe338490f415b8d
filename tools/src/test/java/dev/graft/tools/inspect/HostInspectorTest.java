package dev.graft.tools.inspect;

import dev.graft.compiler.HostModel;
import dev.graft.testing.CustomKinds;
import dev.graft.testing.MiniLmHost;
import dev.graft.testing.TinyBertHost;
import dev.graft.testing.TinyCnnHost;
import dev.graft.testing.TinyGpt2Host;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.dsl.Graft;
import dev.graft.compiler.kinds.LinearSite;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.tools.inspect.HostInspector;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.spec.manifest.Manifest;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The host inspector on the tiny hosts: the candidate sites it lists, the sites a declaration
 * takes (the same the compiler takes), the compiler's errors when it takes none, and its argument
 * errors.
 */
class HostInspectorTest {
  /**
   * The built-in kinds on linear sites. The dsl tests also register the op-DSL test kinds of
   * {@code CustomKinds} as services, listed after these, so headings are matched up to them.
   */
  private static final String LORA_FAMILY = "kinds lora, dylora, lokr, loha, vera, ia3, mixture_lora, multi_head_routing";

  @TempDir
  Path dir;

  private Path bert;

  @BeforeEach
  void writeHosts() throws IOException {
    bert = write("tiny-bert.onnx", TinyBertHost.graph(3));
  }

  private Path write(String name, Graph graph) throws IOException {
    Path file = dir.resolve(name);
    Files.write(file, OnnxExport.write(graph, "tiny").toByteArray());
    return file;
  }

  /** What one run printed, and its exit status. */
  private record Run(int status, String out, String err) {}

  private static Run inspect(String... args) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int status = HostInspector.run(args, new PrintStream(out, true, StandardCharsets.UTF_8),
        new PrintStream(err, true, StandardCharsets.UTF_8));
    return new Run(status, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
  }

  @Test
  void summarizesTheHost() {
    Run r = inspect(bert.toString());
    assertEquals(HostInspector.OK, r.status(), r.err());
    List<String> lines = r.out().lines().limit(8).toList();
    // TinyBertHost's tensors: word, position, token-type embeddings and their LayerNorm
    // (50·8 + 16·8 + 2·8 + 2·8 = 560), per layer 4 projections of 8·8+8, 8·16+16, 16·8+8 and two
    // LayerNorms (600), 2 layers; 5 + 2·16 tensors. Its 20 scalar constants are not parameters.
    assertEquals(List.of(
        "host        " + bert,
        "opset       ai.onnx 17",
        "parameters  1,760 in 37 floating-point tensors",
        "layers      2 (0..1)",
        "inputs      input_ids          int64[batch, sequence]",
        "            attention_mask     int64[batch, sequence]",
        "            token_type_ids     int64[batch, sequence]",
        "outputs     last_hidden_state  float32[batch, sequence, 8]"), lines);
  }

  @Test
  void listsEveryKindsCandidateSitesGroupedByLayer() {
    Run r = inspect(bert.toString());
    assertEquals(HostInspector.OK, r.status(), r.err());
    assertEquals("", r.err());

    List<Map<String, String>> linear = table(r.out(), "linear sites · 12 in layers 0..1 · " + LORA_FAMILY);
    assertEquals(12, linear.size());
    assertEquals(row("0", "/encoder/layer.0/attention/self/query/MatMul", "[8, 8]", "encoder.layer.0.attention.self.query"),
        linear.get(0));
    assertEquals(row("", "/encoder/layer.0/intermediate/dense/MatMul", "[8, 16]", "encoder.layer.0.intermediate.dense"),
        linear.get(4));
    assertEquals(row("", "/encoder/layer.0/output/dense/MatMul", "[16, 8]", "encoder.layer.0.output.dense"),
        linear.get(5));
    assertEquals(row("1", "/encoder/layer.1/attention/self/query/MatMul", "[8, 8]", "encoder.layer.1.attention.self.query"),
        linear.get(6));

    List<Map<String, String>> outputs = table(r.out(), "linear output sites · 12 in layers 0..1 · kinds bottleneck, earth");
    assertEquals("16", outputs.get(4).get("width"));
    assertEquals("/encoder/layer.0/intermediate/dense/Add_output_0", outputs.get(4).get("output value"));

    List<Map<String, String>> spans = table(r.out(), "feed-forward span sites · 2 in layers 0..1 · kinds parallel, hydra");
    assertEquals(List.of("/encoder/layer.0/output/dense/MatMul", "/encoder/layer.1/output/dense/MatMul"),
        column(spans, "node (last linear layer)"));
    assertEquals("encoder.layer.0.output", spans.get(0).get("module"));

    List<Map<String, String>> attention = table(r.out(), "attention sites · 2 in layers 0..1 · kinds prefix_tuning");
    assertEquals(List.of("2", "2"), column(attention, "heads"));
    assertEquals(List.of("key", "value"), List.of(attention.get(1).get("keys"), attention.get(1).get("values")));

    List<Map<String, String>> embedding = table(r.out(), "embedding sites · 1 · kinds prompt_tuning");
    assertEquals("-", embedding.get(0).get("layer"));
    assertEquals("[50, 8]", embedding.get(0).get("[vocab, hidden]"));

    assertEquals(17, table(r.out(), "bias sites · 17 in layers 0..1 · kinds bitfit").size());
    assertEquals(10, table(r.out(), "layer norm tensor sites · 10 in layers 0..1 · kinds layernorm").size());
    assertEquals(12, table(r.out(), "linear sites (ModuleSite) · 12 in layers 0..1 · kinds full").size());
    assertFalse(r.out().contains("kinds with no site"), r.out());
  }

  @Test
  void listsKindsThatFindNoSiteWithTheCompilersReason() throws IOException {
    Path cnn = write("tiny-cnn.onnx", TinyCnnHost.graph(3));
    Run r = inspect(cnn.toString());
    assertEquals(HostInspector.OK, r.status(), r.err());
    assertTrue(r.out().contains("\nlayers      none found"), r.out());
    List<Map<String, String>> linear = table(r.out(), "linear sites · 2 · " + LORA_FAMILY);
    assertEquals(List.of("/proj/dense/MatMul", "/fc/dense/Gemm"), column(linear, "node"));
    assertEquals(List.of("-", ""), column(linear, "layer"));
    String noSites = r.out().substring(r.out().indexOf("kinds with no site on this host"));
    assertTrue(noSites.contains("\n  parallel       [GRAFT060] cannot place Parallel adapter on " + cnn
        + ": found no feed-forward block"), noSites);
    assertTrue(noSites.contains("\n  prompt_tuning  [GRAFT075] cannot place prompt tuning on " + cnn), noSites);
  }

  @Test
  void aKindWithoutSelectTakesTheSitesOfItsDefaultTargetAsTheCompilerDoes() {
    Run r = inspect(bert.toString(), "--kind", "lora");
    assertEquals(HostInspector.OK, r.status(), r.err());
    assertTrue(r.out().contains("\nLoRA (lora) · target (?i).*/(query|value|q_proj|v_proj)/(MatMul|MatMul_quant|Gemm) (the kind's default)"
        + " · all layers\noptions: alpha=16, dora=false, dropout=0, init=default, rank=8, rslora=false\n"), r.out());
    List<Map<String, String>> taken = table(r.out(), "takes 4 of 12 linear sites:");
    assertEquals(List.of("0", "", "1", ""), column(taken, "layer"));
    assertEquals(compiledSites(g -> g.lora("")), column(taken, "module"));
  }

  @Test
  void selectAndLayersTakeTheSitesTheCompilerTakes() {
    Run r = inspect(bert.toString(), "--kind", "lora", "--select", ".*/(query|key)/MatMul", "--layers", "1");
    assertEquals(HostInspector.OK, r.status(), r.err());
    List<Map<String, String>> taken = table(r.out(), "takes 2 of 12 linear sites:");
    assertEquals(List.of("encoder.layer.1.attention.self.query", "encoder.layer.1.attention.self.key"),
        column(taken, "module"));
    assertEquals(compiledSites(g -> g.lora(".*/(query|key)/MatMul", o -> o.layers(1))), column(taken, "module"));
  }

  @Test
  void optionsChangeTheDefaultTargetAsInTheCompiler() {
    Run r = inspect(bert.toString(), "--kind", "bottleneck", "--option", "config=houlsby");
    assertEquals(HostInspector.OK, r.status(), r.err());
    List<Map<String, String>> taken = table(r.out(), "takes 4 of 12 linear output sites:");
    List<String> modules = column(taken, "node").stream().map(LinearSite::modulePath).toList();
    assertEquals(List.of("encoder.layer.0.attention.output.dense", "encoder.layer.0.output.dense",
        "encoder.layer.1.attention.output.dense", "encoder.layer.1.output.dense"), modules);
    assertEquals(compiledSites(g -> g.bottleneck("", o -> o.set("config", "houlsby"))), modules);
  }

  @Test
  void aSelectorThatMatchesNothingGivesTheCompilersError() {
    Run r = inspect(bert.toString(), "--kind", "lora", "--select", ".*/attention/self/query", "--layers", "0");
    assertEquals(HostInspector.REJECTED, r.status());
    String message = compileErrors(g -> g.lora(".*/attention/self/query", o -> o.layers(0))).get(0).message();
    assertTrue(message.startsWith("[GRAFT011] selector '.*/attention/self/query' matches no linear site of " + bert
        + " in layers [0]; nearest node names: /encoder/layer.0/attention/self/query/MatMul"), message);
    assertEquals("error: " + message + System.lineSeparator(), r.err());
    assertFalse(r.out().contains("takes"), r.out());
  }

  @Test
  void layersTheHostDoesNotHaveAndInvalidSelectorsAndOptionsGiveTheCompilersErrors() {
    Run layers = inspect(bert.toString(), "--kind", "lora", "--layers", "0,7");
    assertEquals(HostInspector.REJECTED, layers.status());
    assertEquals("error: [GRAFT016] layer filter [7] selects no layer of " + bert + "; the host has layers [0, 1]",
        layers.err().strip());

    Run regex = inspect(bert.toString(), "--kind", "lokr", "--select", ".*(query");
    assertEquals(HostInspector.REJECTED, regex.status());
    assertTrue(regex.err().startsWith("error: [GRAFT010] selector '.*(query' is not a valid regular expression"),
        regex.err());

    Run rank = inspect(bert.toString(), "--kind", "lora", "--option", "rank=0");
    assertEquals(HostInspector.REJECTED, rank.status());
    assertEquals("error: " + compileErrors(g -> g.lora("", o -> o.rank(0))).get(0).message(), rank.err().strip());
    assertEquals("error: [GRAFT012] LoRA rank must be in 1..4096, got 0", rank.err().strip());

    Run unknown = inspect(bert.toString(), "--kind", "lora", "--option", "rnak=4");
    assertEquals(HostInspector.REJECTED, unknown.status());
    assertTrue(unknown.err().startsWith("error: [GRAFT019] LoRA has no option 'rnak'"), unknown.err());
  }

  @Test
  void aKindWhoseSitesTheHostLacksGivesTheCompilersError() throws IOException {
    Path gpt2 = write("tiny-gpt2.onnx", TinyGpt2Host.graph(3));
    Run r = inspect(gpt2.toString(), "--kind", "prefix_tuning");
    assertEquals(HostInspector.REJECTED, r.status());
    assertTrue(r.err().startsWith("error: [GRAFT077] cannot place prefix tuning on " + gpt2), r.err());

    Run lora = inspect(gpt2.toString(), "--kind", "lora");
    assertEquals(HostInspector.REJECTED, lora.status());
    assertTrue(lora.err().startsWith("error: [GRAFT011] selector '(?i).*/(query|value|q_proj|v_proj)/(MatMul|MatMul_quant|Gemm)'"
        + " matches no linear site of " + gpt2), lora.err());
  }

  @Test
  void sitesTheCompilerWouldRefuseAreMarkedWithTheReason() throws IOException {
    // With a 2-label head on last_hidden_state (the host's first output), the folded LM head's
    // output reaches no loss: the compiler refuses that site alone, with GRAFT190.
    Path gpt2 = write("tiny-gpt2-folded.onnx", TinyGpt2Host.withFoldedHead(3));
    Run r = inspect(gpt2.toString(), "--kind", "lora", "--select", ".*/(c_attn|lm_head)/MatMul");
    assertEquals(HostInspector.REJECTED, r.status(), r.out() + r.err());
    assertTrue(r.out().contains("the compiler refuses 1 of these 3 sites (compiled with a 2-label head on"
        + " 'last_hidden_state'):" + System.lineSeparator() + "  /lm_head/MatMul  [GRAFT190] LoRA parameter"
        + " 'lm_head.lora_A' on /lm_head/MatMul cannot reach the loss"), r.out());
    assertFalse(r.out().contains("  /transformer/h.0/attn/c_attn/MatMul  [GRAFT"), r.out());
    assertTrue(r.err().startsWith("error: [GRAFT190] LoRA parameter 'lm_head.lora_A'"), r.err());

    Run ok = inspect(gpt2.toString(), "--kind", "lora", "--select", ".*/c_attn/MatMul");
    assertEquals(HostInspector.OK, ok.status(), ok.out() + ok.err());
    assertFalse(ok.out().contains("refuses"), ok.out());
  }

  @Test
  void thePlainListingMarksTheSitesTheCompilerWouldRefuse() throws IOException {
    // The folded LM head's output reaches no 2-label head on last_hidden_state: the compiler
    // refuses it for the linear kinds (compiled as lora), the bottleneck on its output and full
    // tuning, with GRAFT190.
    Path gpt2 = write("tiny-gpt2-folded.onnx", TinyGpt2Host.withFoldedHead(3));
    long start = System.nanoTime();
    Run r = inspect(gpt2.toString());
    System.out.printf("plain listing of the tiny GPT-2 with its compile checks: %.1f s%n", (System.nanoTime() - start) / 1e9);
    assertEquals(HostInspector.OK, r.status(), r.err());
    List<String> lines = r.out().lines().toList();
    int linear = lines.indexOf(lines.stream().filter(l -> l.startsWith("linear sites · 9 in layers 0..1 · kinds lora"))
        .findFirst().orElseThrow(() -> new AssertionError(r.out())));
    int refusal = linear + 2 + 9;
    assertEquals("the compiler refuses 1 of these 9 sites (compiled lora with a 2-label head on 'last_hidden_state'):",
        lines.get(refusal), r.out());
    assertTrue(lines.get(refusal + 1).startsWith("  /lm_head/MatMul  [GRAFT190] LoRA parameter 'lm_head.lora_A' on"
        + " /lm_head/MatMul cannot reach the loss"), lines.get(refusal + 1));
    assertTrue(r.out().contains("the compiler refuses 1 of these 9 sites (compiled bottleneck with a 2-label head on"
        + " 'last_hidden_state'):" + System.lineSeparator() + "  /lm_head/MatMul  [GRAFT190] Bottleneck adapter"
        + " parameter"), r.out());
    assertTrue(r.out().contains("the compiler refuses 1 of these 9 sites (compiled full with a 2-label head on"
        + " 'last_hidden_state'):" + System.lineSeparator() + "  /lm_head/MatMul  [GRAFT190] Full tuning parameter"),
        r.out());
    // Prompt tuning's default 20 virtual tokens do not fit the 16 positions.
    assertTrue(r.out().contains("(compiled prompt_tuning with a 2-label head on 'last_hidden_state'):"
        + System.lineSeparator() + "  /transformer/wte/Gather  [GRAFT210] the graft puts 20 virtual tokens"), r.out());
    assertEquals(4, lines.stream().filter(l -> l.startsWith("the compiler refuses")).count(), r.out());

    // On the tiny BERT every kind compiles on all its sites but prompt tuning, whose default 20
    // virtual tokens do not fit its 16 positions either.
    Run bertRun = inspect(bert.toString());
    assertEquals(List.of("the compiler refuses 1 of these 1 sites (compiled prompt_tuning with a 2-label head on"
        + " 'last_hidden_state'):"), bertRun.out().lines().filter(l -> l.contains("refuses")).toList(), bertRun.out());
  }

  @Test
  void namingASiteInAnErrorIsExact() {
    assertTrue(CompileCheck.names("parameter on /a/b/MatMul cannot", "/a/b/MatMul"));
    assertTrue(CompileCheck.names("'/a/b/MatMul'", "/a/b/MatMul"));
    assertFalse(CompileCheck.names("on /a/b/MatMul_1 cannot", "/a/b/MatMul"));
    assertFalse(CompileCheck.names("on /x/a/b/MatMul cannot", "/a/b/MatMul"));
    assertFalse(CompileCheck.names("on /a/b/MatMul.weight", "/a/b/MatMul"));
  }

  @Test
  void aSelectorWithoutKindShowsWhatItTakesOfEverySiteType() {
    Run r = inspect(bert.toString(), "--select", ".*layer\\.1.*");
    assertEquals(HostInspector.OK, r.status(), r.err());
    assertEquals(6, table(r.out(), "linear sites · takes 6 of 12 · " + LORA_FAMILY).size());
    assertEquals(List.of("/encoder/layer.1/attention/self/MatMul"),
        column(table(r.out(), "attention sites · takes 1 of 2 · kinds prefix_tuning"), "node (scores)"));
    assertTrue(r.out().contains("embedding sites · takes none · kinds prompt_tuning\n  [GRAFT011] selector"
        + " '.*layer\\.1.*' matches no embedding site of " + bert), r.out());

    Run none = inspect(bert.toString(), "--select", "nothing");
    assertEquals(HostInspector.REJECTED, none.status());
    assertEquals("error: selector 'nothing' takes no site of any adapter kind on " + bert, none.err().strip());
  }

  @Test
  void badArgumentsSayWhatWasExpected() {
    assertUsage("error: expected a host model (an .onnx file or class-path resource), got none");
    assertUsage("error: --kind expects a value (an adapter kind id such as lora), got none", bert.toString(), "--kind");
    assertUsage("error: unknown argument '--rank'; expected a host model, --kind, --select, --layers, --option or --help",
        bert.toString(), "--rank", "8");
    assertUsage("error: --layers expects comma-separated layer indices >= 0 such as 0,1; got '0,x' ('x' is not one)",
        bert.toString(), "--layers", "0,x");
    assertUsage("error: --option rank needs --kind: options belong to an adapter kind", bert.toString(), "--option",
        "rank=4");
    assertUsage("error: --option expects <name>=<value>, e.g. rank=4; got 'rank'", bert.toString(), "--kind", "lora",
        "--option", "rank");
    assertUsage("error: expected one host model, got two: 'a.onnx' and 'b.onnx'", "a.onnx", "b.onnx");
    assertUsage("error: --kind given twice ('lora' and 'lokr'); expected it once", bert.toString(), "--kind=lora",
        "--kind", "lokr");
  }

  private static void assertUsage(String message, String... args) {
    Run r = inspect(args);
    assertEquals(HostInspector.USAGE, r.status(), r.out());
    assertEquals(message + System.lineSeparator() + "(--help prints the usage)" + System.lineSeparator(), r.err());
    assertEquals("", r.out());
  }

  @Test
  void anUnknownKindOrHostIsTheCompilersError() throws IOException {
    Run kind = inspect(bert.toString(), "--kind", "lorra");
    assertEquals(HostInspector.USAGE, kind.status());
    assertTrue(kind.err().startsWith("error: [GRAFT017] unknown adapter kind 'lorra'; known kinds: [lora, dylora,"),
        kind.err());

    Run missing = inspect("no-such-host.onnx");
    assertEquals(HostInspector.USAGE, missing.status());
    assertEquals("error: [GRAFT001] host model 'no-such-host.onnx' not found; looked in file "
        + Path.of("no-such-host.onnx").toAbsolutePath() + ", class path resource no-such-host.onnx", missing.err().strip());

    Path text = dir.resolve("notes.onnx");
    Files.writeString(text, "not a model");
    Run unreadable = inspect(text.toString());
    assertEquals(HostInspector.USAGE, unreadable.status());
    assertTrue(unreadable.err().startsWith("error: [GRAFT002] host model '" + text + "' cannot be read as ONNX: not an"
        + " ONNX model"), unreadable.err());
  }

  @Test
  void helpPrintsTheUsage() {
    Run r = inspect("--help");
    assertEquals(HostInspector.OK, r.status());
    assertTrue(r.out().startsWith("usage: HostInspector <host> [--kind <id>]"), r.out());
    assertTrue(r.out().contains("--layers <i,j,...>"), r.out());
    assertEquals("", r.err());
  }

  /** MiniLM's plain listing, with one compile per group of kinds: timed, and nothing refused. */
  @Test
  void thePlainListingOfTheRealHostCompilesEachGroupOnce() {
    long start = System.nanoTime();
    Run r = inspect(MiniLmHost.RESOURCE);
    double seconds = (System.nanoTime() - start) / 1e9;
    System.out.printf("plain listing of all-MiniLM-L6-v2 with its compile checks: %.1f s%n", seconds);
    assertEquals(HostInspector.OK, r.status(), r.err());
    assertTrue(r.out().contains("linear sites · 36 in layers 0..5 · " + LORA_FAMILY), r.out());
    assertFalse(r.out().contains("refuses"), r.out());
  }

  @Test
  void readsTheRealHostFromTheClassPath() {
    Run r = inspect(MiniLmHost.RESOURCE, "--kind", "lora");
    assertEquals(HostInspector.OK, r.status(), r.err());
    assertTrue(r.out().startsWith("host        all-minilm-l6-v2.onnx\nopset       ai.onnx 11\n"
        + "parameters  22,565,376 in 101 floating-point tensors\nlayers      6 (0..5)\n"), r.out());
    List<Map<String, String>> taken = table(r.out(), "takes 12 of 36 linear sites:");
    assertEquals(List.of("0", "", "1", "", "2", "", "3", "", "4", "", "5", ""), column(taken, "layer"));
    assertEquals(row("", "/encoder/layer.5/attention/self/value/MatMul", "[384, 384]",
        "encoder.layer.5.attention.self.value"), taken.get(11));
  }

  /** The module paths of the sites the compiler takes for the one declaration {@code declare} adds to the tiny BERT. */
  private List<String> compiledSites(UnaryOperator<Graft> declare) {
    Manifest m = declare.apply(Graft.host(HostModel.read(bert))).classification(2).compile().manifest();
    return m.getAdapters(0).getSitesList();
  }

  /** The compiler's errors for the declaration {@code declare} adds to the tiny BERT. */
  private List<Diagnostic> compileErrors(UnaryOperator<Graft> declare) {
    Graft graft = declare.apply(Graft.host(HostModel.read(bert))).classification(2);
    return assertThrows(GraftCompileException.class, graft::compile).diagnostics();
  }

  private static Map<String, String> row(String layer, String node, String shape, String module) {
    Map<String, String> row = new LinkedHashMap<>();
    row.put("layer", layer);
    row.put("node", node);
    row.put("[in, out]", shape);
    row.put("module", module);
    return row;
  }

  private static List<String> column(List<Map<String, String>> table, String name) {
    return table.stream().map(r -> r.get(name)).toList();
  }

  /**
   * The table printed under the line {@code heading}: its header's column names (separated by
   * two or more spaces) and each row's cells, cut at the header's column starts, up to the next
   * line that is blank or not indented.
   */
  private static List<Map<String, String>> table(String out, String heading) {
    List<String> lines = out.lines().toList();
    int at = -1;
    for (int i = 0; i < lines.size() && at < 0; i++) {
      if (lines.get(i).equals(heading) || lines.get(i).startsWith(heading + ", ")) {
        at = i;
      }
    }
    assertTrue(at >= 0, "no line '" + heading + "' in:\n" + out);
    String header = lines.get(at + 1);
    List<Integer> starts = new ArrayList<>();
    List<String> names = new ArrayList<>();
    for (int i = 0; i < header.length(); i++) {
      boolean start = header.charAt(i) != ' ' && (i < 2 || header.startsWith("  ", i - 2));
      if (start) {
        starts.add(i);
        int end = header.indexOf("  ", i);
        names.add(header.substring(i, end < 0 ? header.length() : end));
      }
    }
    List<Map<String, String>> rows = new ArrayList<>();
    for (String line : lines.subList(at + 2, lines.size())) {
      if (!line.startsWith("  ") || line.isBlank()) {
        break;
      }
      Map<String, String> row = new LinkedHashMap<>();
      for (int c = 0; c < names.size(); c++) {
        int from = Math.min(starts.get(c), line.length());
        int to = c + 1 < starts.size() ? Math.min(starts.get(c + 1), line.length()) : line.length();
        row.put(names.get(c), line.substring(from, to).strip());
      }
      rows.add(row);
    }
    return rows;
  }
}
