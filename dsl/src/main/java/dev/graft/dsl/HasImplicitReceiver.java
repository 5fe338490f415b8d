package dev.graft.dsl;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * Marks a single-method interface whose one parameter Kotlin should pass to a lambda as its
 * receiver ({@code this}) rather than as {@code it}, so that a builder block reads
 * {@code lora(target) { rank = 8 }} instead of {@code lora(target) { it.rank = 8 }}.
 *
 * <p>Kotlin applies it through its {@code sam-with-receiver} compiler plugin, given this
 * annotation's name: with Maven, {@code <compilerPlugins><plugin>sam-with-receiver</plugin>} and
 * {@code <option>sam-with-receiver:annotation=dev.graft.dsl.HasImplicitReceiver</option>} in the
 * kotlin-maven-plugin's configuration; with Gradle, {@code kotlin("plugin.sam.with.receiver")} and
 * {@code samWithReceiver { annotation("dev.graft.dsl.HasImplicitReceiver") }}. Java callers are
 * unaffected. Gradle's {@code Action} is marked the same way.
 */
@Documented
@Retention(RetentionPolicy.RUNTIME)
@Target(ElementType.TYPE)
public @interface HasImplicitReceiver {}
