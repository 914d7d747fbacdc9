using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Fleet.Configuration;

/// <summary>Cross-reference checks that data annotations cannot express; run on start.</summary>
internal sealed class FleetOptionsValidator : IValidateOptions<FleetOptions>
{
    public ValidateOptionsResult Validate(string? name, FleetOptions options)
    {
        var failures = new List<string>();

        if (options.Routers.Count == 0)
        {
            failures.Add(options.UseSimulatedRouters
                ? $"{FleetOptions.SectionName}:UseSimulatedRouters serves the built-in catalog only when {FleetOptions.SectionName} configures no routers, pools or models, and this one configures pools or models but no routers. Add routers under {FleetOptions.SectionName}:Routers, or remove the pools and models."
                : $"No routers are configured under {FleetOptions.SectionName}:Routers, so the portal could not answer any request. Configure real routers (see appsettings.Routers.example.json), or, for development only, set {FleetOptions.SectionName}:UseSimulatedRouters=true (environment variable Cortensor__Fleet__UseSimulatedRouters=true) to serve the built-in simulated routers.");
        }

        foreach (var (id, router) in options.Routers)
        {
            if (router.Simulated)
            {
                continue;
            }

            CheckApiKey(id, router, failures);

            if (router.BaseUrl is null || !router.BaseUrl.IsAbsoluteUri || (router.BaseUrl.Scheme != Uri.UriSchemeHttp && router.BaseUrl.Scheme != Uri.UriSchemeHttps))
            {
                failures.Add($"Router '{id}' needs an absolute http(s) BaseUrl (or Simulated=true).");
            }

            if (!System.Text.RegularExpressions.Regex.IsMatch(router.ApiVersion, "^v[1-9][0-9]?$"))
            {
                failures.Add($"Router '{id}' has ApiVersion '{router.ApiVersion}'; expected v1, v2, v3 ….");
            }
        }

        if (options.ProxyReadTimeoutSeconds is < 30 or > 3600)
        {
            failures.Add($"{FleetOptions.SectionName}:ProxyReadTimeoutSeconds must be 30..3600.");
        }

        if (options.UnknownSessionCooldownSeconds is < 1 or > 3600)
        {
            failures.Add($"{FleetOptions.SectionName}:UnknownSessionCooldownSeconds must be 1..3600.");
        }

        foreach (var (poolName, pool) in options.Pools)
        {
            // The router's own timeout must fire, and its answer arrive, before any proxy on the path gives up.
            var budget = (long)pool.TaskTimeoutSeconds + (pool.PrecommitTimeoutSeconds ?? 0) + pool.HttpTimeoutSlackSeconds;
            if (budget >= options.ProxyReadTimeoutSeconds)
            {
                failures.Add($"Pool '{poolName}': the HTTP timeout budget TaskTimeoutSeconds ({pool.TaskTimeoutSeconds}) + PrecommitTimeoutSeconds ({pool.PrecommitTimeoutSeconds ?? 0}) + HttpTimeoutSlackSeconds ({pool.HttpTimeoutSlackSeconds}) = {budget} s must be below {FleetOptions.SectionName}:ProxyReadTimeoutSeconds ({options.ProxyReadTimeoutSeconds} s), the read timeout of the proxies in front of the routers and the portal (stock nginx: 300 s). Lower the pool's timeouts, or raise ProxyReadTimeoutSeconds after raising those proxies' read timeouts.");
            }

            if (pool.TaskTimeoutSeconds is < 1 or > 900)
            {
                failures.Add($"Pool '{poolName}': TaskTimeoutSeconds must be 1..900.");
            }

            if (pool.PrecommitTimeoutSeconds is < 1 or > 900)
            {
                failures.Add($"Pool '{poolName}': PrecommitTimeoutSeconds must be 1..900.");
            }

            if (pool.HttpTimeoutSlackSeconds is < 0 or > 600)
            {
                failures.Add($"Pool '{poolName}': HttpTimeoutSlackSeconds must be 0..600.");
            }

            if (!Enum.IsDefined(pool.RouterQueues))
            {
                failures.Add($"Pool '{poolName}': RouterQueues must be Blocking or NonBlocking.");
            }

            if (pool.StreamQueueLength is < 0 or > 100_000)
            {
                failures.Add($"Pool '{poolName}': StreamQueueLength must be 0..100000.");
            }

            if (pool.StreamQueueWaitSeconds is < 0 or > 600)
            {
                failures.Add($"Pool '{poolName}': StreamQueueWaitSeconds must be 0..600.");
            }

            if (pool.Defaults.MaxTokens < 1)
            {
                failures.Add($"Pool '{poolName}': Defaults.MaxTokens must be at least 1.");
            }

            foreach (var member in pool.Members)
            {
                if (!options.Routers.TryGetValue(member.Router, out var router))
                {
                    failures.Add($"Pool '{poolName}' names router '{member.Router}', which is not configured.");
                    continue;
                }

                if (router.Protocol == RouterProtocol.Cortensor && member.SessionId is null)
                {
                    failures.Add($"Pool '{poolName}': member on Cortensor router '{member.Router}' needs a SessionId.");
                }

                if (router.Protocol == RouterProtocol.OpenAICompatible && string.IsNullOrWhiteSpace(pool.UpstreamModel))
                {
                    failures.Add($"Pool '{poolName}' fronts OpenAI-compatible router '{member.Router}' and needs UpstreamModel.");
                }
            }
        }

        foreach (var (alias, model) in options.Models)
        {
            if (!IsValidAlias(alias))
            {
                failures.Add($"Model alias '{alias}' may use only letters, digits and . _ : / - (1..128 chars).");
            }

            if (!options.Pools.ContainsKey(model.Pool))
            {
                failures.Add($"Model '{alias}' names pool '{model.Pool}', which is not configured.");
            }

            if (model.ContextTokens < 1 || model.MaxOutputTokens < 1)
            {
                failures.Add($"Model '{alias}': ContextTokens and MaxOutputTokens must be positive.");
            }
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    // A key that cannot work fails on start, not as a 502 on every request that reaches the router.
    // Key values are never echoed: should a rule ever match a real key, it must not end up in a log.
    private static void CheckApiKey(string id, RouterOptions router, List<string> failures)
    {
        var setting = $"{FleetOptions.SectionName}:Routers:{id}:ApiKey";
        var variable = $"Cortensor__Fleet__Routers__{id}__ApiKey";
        var refSetting = $"{FleetOptions.SectionName}:Routers:{id}:ApiKeyRef";

        string? refVariable = null;
        if (!string.IsNullOrWhiteSpace(router.ApiKeyRef) && !RouterKeyReference.TryGetVariableName(router.ApiKeyRef, out refVariable))
        {
            // Secret-store references (vault:…) are not resolved: such a router would start and then fail every call.
            failures.Add($"Router '{id}': {refSetting} must be {RouterKeyReference.EnvironmentPrefix}NAME, the environment variable that holds the router's key; no other kind of reference is resolved. Use {RouterKeyReference.EnvironmentPrefix}NAME, or set {setting} (environment variable {variable}) instead.");
            return;
        }

        if (!string.IsNullOrWhiteSpace(router.ApiKey))
        {
            if (RouterKeyPlaceholders.IsPlaceholder(router.ApiKey, router.Protocol))
            {
                failures.Add(router.ApiKeyVariable is { } from
                    ? $"Router '{id}': the environment variable {from} (named by {refSetting}) holds a placeholder, not a key. Set it to the router's real key, or remove the router."
                    : $"Router '{id}': {setting} is a placeholder, not a key. Set the router's real key, preferably from a secret store or the environment variable {variable}, or remove the router.");
            }

            return;
        }

        if (!router.Enabled)
        {
            return;
        }

        // A reference says the router has a key; an unset variable would send none (a 401 from the router, a 502 here).
        if (refVariable is not null)
        {
            failures.Add($"Router '{id}': {refSetting} names the environment variable {refVariable}, which is not set (or empty) for the portal. Set {refVariable} to the router's key, or set {setting} instead.");
            return;
        }

        // Cortensor routers require a bearer key on every endpoint; OpenAI-compatible upstreams often run without one.
        if (router.Protocol == RouterProtocol.Cortensor)
        {
            failures.Add($"Router '{id}' has no ApiKey, and Cortensor routers refuse calls without one. Set {setting} (environment variable {variable}) to the router's key, or {refSetting} to {RouterKeyReference.EnvironmentPrefix}NAME to read it from an environment variable.");
        }
    }

    private static bool IsValidAlias(string alias)
    {
        if (alias.Length is 0 or > 128)
        {
            return false;
        }

        foreach (var c in alias)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or ':' or '/' or '-'))
            {
                return false;
            }
        }

        return true;
    }
}
