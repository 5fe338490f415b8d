package dev.graft.examples.customkind;

import com.google.auto.service.AutoService;
import dev.graft.compiler.kinds.AdapterKind;
import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.lora.LoraKind;
import dev.graft.compiler.op.CustomAdapterKind;
import dev.graft.compiler.op.Definition;
import dev.graft.compiler.op.Param;
import dev.graft.compiler.op.Tensor;
import dev.graft.compiler.spec.AdapterSpec;
import java.util.List;

/**
 * Gated LoRA ({@link GatedLora}), written with Graft's op DSL: {@code v + (alpha/r) · (dropout(x)
 * · A · B) ⊙ sigmoid(gate)} with A {@code [in, r]} kaiming-uniform, B {@code [r, out]} zero (so the
 * adapter starts as the identity) and gate {@code [out]} zero (each gate starts half open) and
 * not decayed. Its factors are saved under PEFT's LoRA keys ({@code lora_A.weight}, {@code
 * lora_B.weight}, transposed as PEFT stores them), the gate as {@code gated_lora.gate}.
 *
 * <p>{@code @AutoService} lists this class in {@code META-INF/services/dev.graft.compiler.kinds.AdapterKind},
 * where Graft's {@code AdapterKinds} finds it.
 */
@AutoService(AdapterKind.class)
public final class GatedLoraKind extends CustomAdapterKind {
  @Override
  public String id() {
    return "gated_lora";
  }

  @Override
  public String displayName() {
    return "Gated LoRA";
  }

  @Override
  public String annotation() {
    return "dev.graft.examples.customkind.GatedLora";
  }

  @Override
  public List<AdapterOption> options() {
    return List.of(
        AdapterOption.integer("rank", 8, 1, LoraKind.MAX_RANK, "rank r of the update"),
        AdapterOption.positive("alpha", 16, "scale numerator: the update is multiplied by alpha / r"),
        AdapterOption.number("dropout", 0, 0, 1, "dropout probability on the adapter's input in training"));
  }

  /** LoRA's default sites: the query and value projections. */
  @Override
  public String defaultTarget(AdapterSpec spec) {
    return LoraKind.DEFAULT_TARGET;
  }

  @Override
  protected Tensor define(Definition d) {
    long rank = d.option("rank");
    Param a = d.param("A", d.inWidth(), rank).kaimingUniform().saveTransposed("lora_A.weight");
    Param b = d.param("B", rank, d.outWidth()).zeros().saveTransposed("lora_B.weight");
    Param gate = d.param("gate", d.outWidth()).zeros().noDecay();
    Tensor update = d.input().dropout(d.doubleOption("dropout")).matmul(a).matmul(b);
    return d.value().plus(update.times(d.doubleOption("alpha") / rank).times(gate.sigmoid()));
  }
}
