package dev.graft.compiler.plan;

import dev.graft.compiler.kinds.AdapterKind;
import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.LloydMax;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.spec.AdapterSpec;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The options of an adapter declaration checked against its kind's list: each given value
 * converted to its option's type and checked against its range, the rest filled with defaults.
 * The compiler's validation pass and the host inspector both check through {@link #check}.
 */
public final class DeclaredOptions {
  private DeclaredOptions() {}

  /**
   * A declaration with its options checked and defaulted, and what was wrong with them.
   *
   * @param spec the declaration with every option of its kind: the given values (converted)
   *     where they had the option's type, defaults elsewhere; unknown names dropped
   * @param errors GRAFT019 for an unknown name or a value of the wrong type, GRAFT012/013/014
   *     for a value out of its range; empty when the options are valid
   */
  public record Checked(AdapterSpec spec, List<Diagnostic> errors) {
    public Checked {
      errors = List.copyOf(errors);
    }
  }

  /** Checks the options of {@code declared}, a declaration of {@code kind}, and fills in the defaults. */
  public static Checked check(AdapterKind kind, AdapterSpec declared) {
    List<Diagnostic> errors = new ArrayList<>();
    Map<String, Object> options = new TreeMap<>();
    List<String> names = kind.options().stream().map(AdapterOption::name).toList();
    for (var e : declared.options().entrySet()) {
      if (e.getKey().equals(AdapterSpec.QUANTIZE_BITS)) {
        quantizeBits(kind, declared, e.getValue(), options, errors);
        continue;
      }
      AdapterOption option = kind.options().stream().filter(o -> o.name().equals(e.getKey())).findFirst().orElse(null);
      Object value = option == null ? null : option.coerce(e.getValue());
      if (option == null || value == null) {
        errors.add(Diagnostic.of(ErrorCode.ADAPTER_OPTION_UNKNOWN, declared.source(), e.getKey(), kind.displayName(),
            e.getKey(), e.getValue() + " (" + e.getValue().getClass().getSimpleName() + ")", names));
        continue;
      }
      AdapterOption.Problem problem = option.check(value);
      if (problem != null) {
        errors.add(Diagnostic.of(problem.code(), declared.source(), option.name(), kind.displayName(), option.name(),
            problem.expected(), AdapterOption.text(value)));
      }
      options.put(option.name(), value);
    }
    for (AdapterOption o : kind.options()) {
      options.putIfAbsent(o.name(), o.defaultValue());
    }
    return new Checked(declared.withOptions(options), errors);
  }

  /** The option every kind takes ({@link AdapterSpec#QUANTIZE_BITS}): 0, 1, 2, 4 or 8, on a kind that allows it. */
  private static void quantizeBits(AdapterKind kind, AdapterSpec declared, Object given, Map<String, Object> options,
      List<Diagnostic> errors) {
    Object value = QUANTIZE_BITS.coerce(given);
    if (!(value instanceof Integer bits) || bits != 0 && !LloydMax.supported(bits)) {
      errors.add(Diagnostic.of(ErrorCode.QUANTIZE_BITS_INVALID, declared.source(), AdapterSpec.QUANTIZE_BITS,
          kind.displayName(), AdapterOption.text(given)));
      return;
    }
    String refused = kind.quantizationRefused();
    if (bits != 0 && refused != null) {
      errors.add(Diagnostic.of(ErrorCode.QUANTIZE_KIND_REFUSED, declared.source(), AdapterSpec.QUANTIZE_BITS,
          kind.displayName(), refused));
      return;
    }
    if (bits != 0) {
      options.put(AdapterSpec.QUANTIZE_BITS, bits);
    }
  }

  private static final AdapterOption QUANTIZE_BITS = AdapterOption.integer(AdapterSpec.QUANTIZE_BITS, 0, 0, 8,
      "bits of a quantized adapter's weights (1, 2, 4 or 8); 0 for full precision");
}
