package dev.graft.dsl.compile;


import com.google.protobuf.ByteString;
import dev.graft.dsl.ir.Graph;
import dev.graft.dsl.ir.Node;
import dev.graft.dsl.ir.TensorType;
import dev.graft.dsl.spec.LoraSpec;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.ParameterRole;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Placement pass for LoRA: beside each chosen linear site {@code y = x·W} it adds {@code y' = y
 * + scaling · (dropout(x) · A) · B} with A {@code [in, r]} and B {@code [r, out]} as new graph
 * inputs, and rewires the site's consumers to {@code y'}. On a Gemm site {@code y = alpha·x'·W'
 * + beta·C} the update is added to the Gemm's output as {@code alpha · scaling · (x'·A)·B}
 * ({@code x'} = xᵀ when {@code transA=1}): LoRA adds to the weight term as in PEFT, so merging
 * {@code W' + scaling·A·B} into the host weight gives the same function; C is untouched.
 * Dropout is only placed in training
 * graphs. Needs: a typed graph. Guarantees: graph re-sorted; parameters returned in placement
 * order.
 */
final class LoraPlacement {
  private LoraPlacement() {}

  static List<Parameter> place(Graph graph, Map<LoraSpec, List<LinearSite>> plan, boolean training) {
    List<Parameter> params = new ArrayList<>();
    for (var e : plan.entrySet()) {
      LoraSpec lora = e.getKey();
      for (LinearSite site : e.getValue()) {
        Node matmul = graph.nodes().stream()
            .filter(n -> n.name().equals(site.node())).findFirst().orElseThrow();
        String x = matmul.input(0);
        String y = matmul.output(0);
        int elem = graph.typeOrThrow(y).elemType();
        String base = "/" + site.modulePath().replace('.', '/') + "/lora";
        double scaling = lora.scaling();
        if (matmul.opType().equals("Gemm")) {
          if (matmul.attrInt("transA", 0) == 1) {
            x = graph.op(base + "/Transpose", "Transpose", List.of(x), Node.attr("perm", List.of(1L, 0L)));
          }
          scaling *= matmul.attrFloat("alpha", 1f);
        }
        String a = site.modulePath() + ".lora_A";
        String b = site.modulePath() + ".lora_B";
        graph.addInput(a, TensorType.of(elem, site.in(), lora.rank()));
        graph.addInput(b, TensorType.of(elem, lora.rank(), site.out()));
        params.add(param(a, site, List.of(site.in(), (long) lora.rank()), ParameterRole.LORA_A,
            Init.KAIMING_UNIFORM, site.in()));
        params.add(param(b, site, List.of((long) lora.rank(), site.out()), ParameterRole.LORA_B,
            Init.ZEROS, 0));
        String input = x;
        if (training && lora.dropout() > 0) {
          String ratio = graph.scalar(base + "/dropout_ratio", elem, lora.dropout());
          String mode = graph.constant(base + "/training_mode", TensorProto.newBuilder()
              .setDataType(TensorType.BOOL).setRawData(ByteString.copyFrom(new byte[] {1})).build());
          input = graph.add(base + "/Dropout", "Dropout", "", List.of(x, ratio, mode), 2,
              Node.attrs()).get(0);
        }
        String down = graph.op(base + "/MatMul_A", "MatMul", List.of(input, a));
        String up = graph.op(base + "/MatMul_B", "MatMul", List.of(down, b));
        String scaled = graph.op(base + "/Mul", "Mul",
            List.of(up, graph.scalar(base + "/scaling", elem, scaling)));
        graph.add(base + "/Add", "Add", "", List.of(y, scaled), 1, Node.attrs());
        Node add = graph.nodes().get(graph.nodes().size() - 1);
        graph.replaceUses(y, add.output(0), List.of(add));
      }
    }
    graph.sortTopologically();
    return params;
  }

  static Parameter param(String name, LinearSite site, List<Long> shape, ParameterRole role, Init init, double scale) {
    return Parameter.newBuilder()
        .setName(name)
        .setSite(site.modulePath())
        .setSiteNode(site.node())
        .addAllShape(shape)
        .setRole(role)
        .setInit(init)
        .setInitScale(scale)
        .build();
  }

}
