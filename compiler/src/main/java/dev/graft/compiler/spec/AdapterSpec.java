package dev.graft.compiler.spec;

import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.jspecify.annotations.Nullable;

/**
 * One adapter declaration: an adapter kind ({@code "lora"}, {@code "lokr"}, {@code
 * "bottleneck"} …) on the sites of the host its selector picks, with the options written for it.
 * Options left out take the kind's defaults when the compiler checks the declaration.
 *
 * @param kind the adapter kind's id (see {@code dev.graft.compiler.kinds.AdapterKinds})
 * @param target regular expression a site's node name must match in full; empty for the
 *     kind's default sites
 * @param layers layer indices to adapt (the {@code layer.N} part of node names); empty means all
 * @param options option values by name: {@link Integer}, {@link Double}, {@link Boolean} or
 *     {@link String}
 * @param source opaque reference to where the declaration was written, for diagnostics only
 * @param name the adapter's name ({@code [a-z][a-z0-9_]*}, unique in the graft), by which it is
 *     composed, activated, trained or frozen, saved and loaded; empty for an unnamed declaration
 */
public record AdapterSpec(
    String kind,
    String target,
    List<Integer> layers,
    Map<String, Object> options,
    @Nullable Object source,
    String name) {
  public AdapterSpec {
    layers = List.copyOf(layers);
    options = java.util.Collections.unmodifiableMap(new TreeMap<>(options));
  }

  /** An unnamed declaration. */
  public AdapterSpec(String kind, String target, List<Integer> layers, Map<String, Object> options,
      @Nullable Object source) {
    this(kind, target, layers, options, source, "");
  }

  /** The same declaration with {@code options} (typically: the given ones plus defaults). */
  public AdapterSpec withOptions(Map<String, Object> value) {
    return new AdapterSpec(kind, target, layers, value, source, name);
  }

  /** The same declaration named {@code value}. */
  public AdapterSpec named(String value) {
    return new AdapterSpec(kind, target, layers, options, source, value);
  }

  /** Whether the declaration has a name. */
  public boolean isNamed() {
    return !name.isEmpty();
  }

  /**
   * The option every kind takes: the bits of a quantized adapter (Jie et al., ICCV 2023), 1, 2, 4
   * or 8; absent or 0 for full precision.
   */
  public static final String QUANTIZE_BITS = "quantizeBits";

  /** The declaration's {@link #QUANTIZE_BITS} (checked by the compiler); 0 when not given. */
  public int quantizeBits() {
    Object v = options.get(QUANTIZE_BITS);
    return v instanceof Number n ? n.intValue() : 0;
  }

  /** An integer option (which the compiler has checked and defaulted). */
  public int intOption(String name) {
    return ((Number) option(name)).intValue();
  }

  public double doubleOption(String name) {
    return ((Number) option(name)).doubleValue();
  }

  public boolean boolOption(String name) {
    return (Boolean) option(name);
  }

  public String stringOption(String name) {
    return option(name).toString();
  }

  private Object option(String name) {
    Object v = options.get(name);
    if (v == null) {
      throw new IllegalStateException(kind + " declaration has no option '" + name + "': " + options);
    }
    return v;
  }
}
