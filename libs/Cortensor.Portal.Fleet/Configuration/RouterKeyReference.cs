using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Fleet.Configuration;

/// <summary>
/// The one form of <see cref="RouterOptions.ApiKeyRef"/> the fleet resolves: <c>env:NAME</c>, the environment variable
/// of the portal's process that holds the router's key. Stored fleets carry only such references (keys are never
/// written to a database), so the stores refuse any other form rather than keep a router that cannot start.
/// </summary>
public static class RouterKeyReference
{
    /// <summary>The prefix of an environment variable reference, as in <c>env:ROUTER_EU_1_KEY</c>.</summary>
    public const string EnvironmentPrefix = "env:";

    private const int MaxVariableNameLength = 256;

    /// <summary>True for <c>env:NAME</c>, where NAME is 1..256 of ASCII letters, digits and <c>_ . -</c>.</summary>
    public static bool IsSupported([NotNullWhen(true)] string? reference) => TryGetVariableName(reference, out _);

    /// <summary>The environment variable an <c>env:NAME</c> reference names.</summary>
    public static bool TryGetVariableName([NotNullWhen(true)] string? reference, [NotNullWhen(true)] out string? variableName)
    {
        variableName = null;
        if (reference is null || !reference.StartsWith(EnvironmentPrefix, StringComparison.Ordinal))
        {
            return false;
        }

        var name = reference[EnvironmentPrefix.Length..];
        if (name.Length is 0 or > MaxVariableNameLength)
        {
            return false;
        }

        foreach (var c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-'))
            {
                return false;
            }
        }

        variableName = name;
        return true;
    }
}

/// <summary>
/// Fills <see cref="RouterOptions.ApiKey"/> from the variable an <c>env:NAME</c> <see cref="RouterOptions.ApiKeyRef"/>
/// names, before validation, so a router whose key lives in the environment is checked (missing, placeholder) and
/// called with that key. A key set directly wins over the reference. Runs again on every configuration reload.
/// </summary>
internal sealed class RouterKeyReferencePostConfigure(Func<string, string?> readVariable) : IPostConfigureOptions<FleetOptions>
{
    public RouterKeyReferencePostConfigure()
        : this(Environment.GetEnvironmentVariable)
    {
    }

    public void PostConfigure(string? name, FleetOptions options)
    {
        foreach (var router in options.Routers.Values)
        {
            if (router.Simulated
                || !string.IsNullOrWhiteSpace(router.ApiKey)
                || !RouterKeyReference.TryGetVariableName(router.ApiKeyRef, out var variable))
            {
                continue;
            }

            // Secret files mounted as variables often end in a newline, which no HTTP header may carry.
            var value = readVariable(variable)?.Trim();
            if (!string.IsNullOrEmpty(value))
            {
                router.ApiKey = value;
                router.ApiKeyVariable = variable;
            }
        }
    }
}
