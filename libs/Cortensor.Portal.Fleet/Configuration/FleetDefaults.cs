using Cortensor.Portal.Fleet.Prompts;

namespace Cortensor.Portal.Fleet.Configuration;

/// <summary>
/// The embedded default: the product catalog (gpt-oss-20b, gpt-oss-120b, gemma-4-26b, qwen-3.5-9b on pools
/// oss-20b, oss-120b, gemma4, qwen) served by two simulated routers, so a fresh checkout runs with no services.
/// Applied only when <see cref="FleetOptions.UseSimulatedRouters"/> is set and configuration names no router, pool or
/// model at all.
/// </summary>
public static class FleetDefaults
{
    /// <summary>Session ids the simulated pool uses, one per pool.</summary>
    public static IReadOnlyDictionary<string, long> SimulatedSessions { get; } = new Dictionary<string, long>
    {
        ["oss-20b"] = 1,
        ["oss-120b"] = 2,
        ["gemma4"] = 3,
        ["qwen"] = 4,
    };

    public static void ApplySimulatedDefaults(FleetOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);

        options.Routers["sim-a"] = new RouterOptions { Simulated = true };
        options.Routers["sim-b"] = new RouterOptions { Simulated = true };

        AddPool(options, "oss-20b", PromptFormat.Harmony);
        AddPool(options, "oss-120b", PromptFormat.Harmony);
        AddPool(options, "gemma4", PromptFormat.Gemma);
        AddPool(options, "qwen", PromptFormat.ChatML);

        options.Models["gpt-oss-20b"] = new ModelOptions { Pool = "oss-20b", ContextTokens = 131_072, MaxOutputTokens = 8192 };
        options.Models["gpt-oss-120b"] = new ModelOptions { Pool = "oss-120b", ContextTokens = 131_072, MaxOutputTokens = 8192 };
        options.Models["gemma-4-26b"] = new ModelOptions { Pool = "gemma4", ContextTokens = 131_072, MaxOutputTokens = 8192 };
        options.Models["qwen-3.5-9b"] = new ModelOptions { Pool = "qwen", ContextTokens = 32_768, MaxOutputTokens = 8192 };
    }

    private static void AddPool(FleetOptions options, string pool, PromptFormat format)
    {
        var session = SimulatedSessions[pool];
        options.Pools[pool] = new PoolOptions
        {
            PromptFormat = format,
            TaskTimeoutSeconds = 60,
            Members =
            [
                new PoolMemberOptions { Router = "sim-a", SessionId = session },
                new PoolMemberOptions { Router = "sim-b", SessionId = session },
            ],
        };
    }
}
