using Cortensor.Portal.Accounts.Policies;
using Cortensor.Portal.Storage.Sqlite.Database;
using Cortensor.Portal.Storage.Sqlite.Internal;
using Microsoft.Data.Sqlite;

namespace Cortensor.Portal.Storage.Sqlite.Accounts;

/// <summary>
/// <see cref="IModelAccessPolicyStore"/> over <c>model_access_policies</c>. Rows are unique by
/// <c>(subject_type, subject_id, model_alias)</c>; the <c>id</c> column is assigned here (<c>map_</c> + a time-ordered
/// id) and not part of the contract. A <see cref="PolicySubjectType.Global"/> policy is stored as subject_type
/// <c>global</c> with subject_id <c>*</c> (any other id is refused with <see cref="ArgumentException"/>; the table's
/// CHECK, from V0003, refuses it too). Thread-safe: every call uses its own pooled connection.
/// </summary>
public sealed class SqliteModelAccessPolicyStore : IModelAccessPolicyStore
{
    private const string Columns = "subject_type, subject_id, model_alias, effect, created_at";

    private readonly SqliteDatabase _database;

    public SqliteModelAccessPolicyStore(SqliteDatabase database)
    {
        ArgumentNullException.ThrowIfNull(database);
        _database = database;
    }

    public async Task SetAsync(ModelAccessPolicy policy, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentException.ThrowIfNullOrEmpty(policy.SubjectId, nameof(policy));
        ArgumentException.ThrowIfNullOrEmpty(policy.ModelAlias, nameof(policy));
        ThrowIfBadGlobalId(policy.SubjectType, policy.SubjectId, nameof(policy));
        var subjectType = ToText(policy.SubjectType);
        var effect = ToText(policy.Effect);

        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = $"""
                INSERT INTO model_access_policies (id, {Columns})
                VALUES ($id, $subject_type, $subject_id, $model_alias, $effect, $created_at)
                ON CONFLICT (subject_type, subject_id, model_alias) DO UPDATE SET
                    effect = excluded.effect,
                    created_at = excluded.created_at;
                """;
            var p = command.Parameters;
            p.AddWithValue("$id", "map_" + Guid.CreateVersion7().ToString("N"));
            p.AddWithValue("$subject_type", subjectType);
            p.AddWithValue("$subject_id", policy.SubjectId);
            p.AddWithValue("$model_alias", policy.ModelAlias);
            p.AddWithValue("$effect", effect);
            p.AddWithValue("$created_at", UnixMicroseconds.From(policy.CreatedAt));
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public async Task<bool> RemoveAsync(PolicySubjectType subjectType, string subjectId, string modelAlias, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(subjectId);
        ArgumentNullException.ThrowIfNull(modelAlias);
        ThrowIfBadGlobalId(subjectType, subjectId, nameof(subjectId));
        var type = ToText(subjectType);

        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = """
                DELETE FROM model_access_policies
                WHERE subject_type = $subject_type AND subject_id = $subject_id AND model_alias = $model_alias;
                """;
            command.Parameters.AddWithValue("$subject_type", type);
            command.Parameters.AddWithValue("$subject_id", subjectId);
            command.Parameters.AddWithValue("$model_alias", modelAlias);
            return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
        }
    }

    public async Task<IReadOnlyList<ModelAccessPolicy>> ListAsync(PolicySubjectType subjectType, string subjectId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(subjectId);
        ThrowIfBadGlobalId(subjectType, subjectId, nameof(subjectId));
        var type = ToText(subjectType);

        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = $"""
                SELECT {Columns} FROM model_access_policies
                WHERE subject_type = $subject_type AND subject_id = $subject_id
                ORDER BY model_alias;
                """;
            command.Parameters.AddWithValue("$subject_type", type);
            command.Parameters.AddWithValue("$subject_id", subjectId);
            return await ReadAllAsync(command, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <remarks>
    /// One query; each branch of the <c>OR</c> is served by the unique <c>(subject_type, subject_id, model_alias)</c> index.
    /// Key policies come first, then org, then plan, then global, each ordered by alias. With no <paramref name="planId"/>,
    /// plan policies are left out.
    /// </remarks>
    public async Task<IReadOnlyList<ModelAccessPolicy>> ListApplicableAsync(string? planId, string orgId, string keyId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(orgId);
        ArgumentNullException.ThrowIfNull(keyId);

        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = $"""
                SELECT {Columns} FROM model_access_policies
                WHERE (subject_type = 'key' AND subject_id = $key_id)
                   OR (subject_type = 'org' AND subject_id = $org_id)
                   OR (subject_type = 'plan' AND subject_id = $plan_id)
                   OR (subject_type = 'global' AND subject_id = '*')
                ORDER BY CASE subject_type WHEN 'key' THEN 0 WHEN 'org' THEN 1 WHEN 'plan' THEN 2 ELSE 3 END, model_alias;
                """;
            command.Parameters.AddWithValue("$key_id", keyId);
            command.Parameters.AddWithValue("$org_id", orgId);
            command.Parameters.AddWithValue("$plan_id", SqliteValues.OrDbNull(planId));
            return await ReadAllAsync(command, cancellationToken).ConfigureAwait(false);
        }
    }

    private static async Task<IReadOnlyList<ModelAccessPolicy>> ReadAllAsync(SqliteCommand command, CancellationToken cancellationToken)
    {
        var policies = new List<ModelAccessPolicy>();
        var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using (reader.ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                policies.Add(new ModelAccessPolicy
                {
                    SubjectType = SubjectTypeFromText(reader.GetString(0)),
                    SubjectId = reader.GetString(1),
                    ModelAlias = reader.GetString(2),
                    Effect = EffectFromText(reader.GetString(3)),
                    CreatedAt = reader.GetTimestamp(4),
                });
            }
        }

        return policies;
    }

    private static void ThrowIfBadGlobalId(PolicySubjectType type, string subjectId, string paramName)
    {
        if (type == PolicySubjectType.Global && !string.Equals(subjectId, ModelAccessPolicy.GlobalSubjectId, StringComparison.Ordinal))
        {
            throw new ArgumentException($"A global policy's subject id must be '{ModelAccessPolicy.GlobalSubjectId}', not '{subjectId}'.", paramName);
        }
    }

    private static string ToText(PolicySubjectType type) => type switch
    {
        PolicySubjectType.Plan => "plan",
        PolicySubjectType.Org => "org",
        PolicySubjectType.Key => "key",
        PolicySubjectType.Global => "global",
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "Unknown policy subject type."),
    };

    private static PolicySubjectType SubjectTypeFromText(string text) => text switch
    {
        "plan" => PolicySubjectType.Plan,
        "org" => PolicySubjectType.Org,
        "key" => PolicySubjectType.Key,
        "global" => PolicySubjectType.Global,
        _ => throw new InvalidOperationException($"Unknown policy subject type '{text}' in model_access_policies."),
    };

    private static string ToText(PolicyEffect effect) => effect switch
    {
        PolicyEffect.Allow => "allow",
        PolicyEffect.Deny => "deny",
        _ => throw new ArgumentOutOfRangeException(nameof(effect), effect, "Unknown policy effect."),
    };

    private static PolicyEffect EffectFromText(string text) => text switch
    {
        "allow" => PolicyEffect.Allow,
        "deny" => PolicyEffect.Deny,
        _ => throw new InvalidOperationException($"Unknown policy effect '{text}' in model_access_policies."),
    };
}
