namespace Cortensor.Portal.Unkey.Keys;

/// <summary>
/// A partial update of a key issued through Unkey (<see cref="UnkeyApiKeyProvider.UpdateAsync"/>): every property
/// left at its default keeps the current value.
/// </summary>
public sealed record UnkeyKeyUpdate
{
    /// <summary>A new display name.</summary>
    public string? Name { get; init; }

    /// <summary>False suspends the key (it answers 401 <c>api_key_disabled</c>), true lifts the suspension.</summary>
    public bool? Enabled { get; init; }

    /// <summary>A new expiry (must be in the future).</summary>
    public DateTimeOffset? ExpiresAt { get; init; }

    /// <summary>True removes the expiry.</summary>
    public bool NeverExpires { get; init; }

    /// <summary>A new model allow-list (<c>meta.allowedModels</c>).</summary>
    public IReadOnlyList<string>? AllowedModels { get; init; }

    /// <summary>True removes the allow-list: every enabled model.</summary>
    public bool AllowAllModels { get; init; }

    /// <summary>A new plan (<c>meta.plan</c>).</summary>
    public string? PlanId { get; init; }

    /// <summary>True removes the plan.</summary>
    public bool ClearPlan { get; init; }
}
