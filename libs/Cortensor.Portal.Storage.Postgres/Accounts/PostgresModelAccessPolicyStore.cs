using System.Globalization;
using Cortensor.Portal.Accounts.Policies;
using Cortensor.Portal.Storage.Postgres.Configuration;
using Cortensor.Portal.Storage.Postgres.Internal;
using Microsoft.Extensions.Options;
using Npgsql;
using static Cortensor.Portal.Storage.Postgres.Accounts.PostgresParameters;

namespace Cortensor.Portal.Storage.Postgres.Accounts;

/// <summary>
/// <see cref="IModelAccessPolicyStore"/> over <c>model_access_policies</c>, keyed by the unique
/// (subject_type, subject_id, model_alias). The row id is generated here (<c>map_</c> + a time-ordered GUID)
/// and kept when a policy is replaced. A <see cref="PolicySubjectType.Global"/> policy is stored as subject_type
/// <c>global</c> with subject_id <c>*</c>; any other id is refused with <see cref="ArgumentException"/> (and by the
/// table's CHECK, from V0004).
/// </summary>
/// <remarks>
/// Each call is one statement on a pooled connection: no prepared statements, no session state.
/// <see cref="ListApplicableAsync"/> reads the key's, the org's, the plan's and the global policies in one query,
/// most specific subject first (key, org, plan, global), then by alias.
/// </remarks>
public sealed class PostgresModelAccessPolicyStore : IModelAccessPolicyStore
{
    private const string Columns = "subject_type, subject_id, model_alias, effect, created_at";

    private readonly NpgsqlDataSource _dataSource;
    private readonly string _setSql;
    private readonly string _removeSql;
    private readonly string _listSql;
    private readonly string _listApplicableSql;

    public PostgresModelAccessPolicyStore(NpgsqlDataSource dataSource, IOptions<PostgresStorageOptions> options)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(options);
        _dataSource = dataSource;
        var table = new StoreSchema(options.Value.Schema).Table("model_access_policies");

        _setSql =
            $"INSERT INTO {table} (id, {Columns}) VALUES ($1, $2, $3, $4, $5, $6) " +
            "ON CONFLICT (subject_type, subject_id, model_alias) DO UPDATE SET effect = EXCLUDED.effect, created_at = EXCLUDED.created_at";
        _removeSql = $"DELETE FROM {table} WHERE subject_type = $1 AND subject_id = $2 AND model_alias = $3";
        _listSql = $"SELECT {Columns} FROM {table} WHERE subject_type = $1 AND subject_id = $2 ORDER BY model_alias COLLATE \"C\"";
        _listApplicableSql =
            $"SELECT {Columns} FROM {table} " +
            "WHERE (subject_type = 'key' AND subject_id = $3) OR (subject_type = 'org' AND subject_id = $2) " +
            "OR (subject_type = 'plan' AND subject_id = $1) OR (subject_type = 'global' AND subject_id = '*') " +
            "ORDER BY CASE subject_type WHEN 'key' THEN 0 WHEN 'org' THEN 1 WHEN 'plan' THEN 2 ELSE 3 END, model_alias COLLATE \"C\"";
    }

    public async Task SetAsync(ModelAccessPolicy policy, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentException.ThrowIfNullOrEmpty(policy.SubjectId, nameof(policy));
        ArgumentException.ThrowIfNullOrEmpty(policy.ModelAlias, nameof(policy));
        ThrowIfBadGlobalId(policy.SubjectType, policy.SubjectId, nameof(policy));

        await using var command = _dataSource.CreateCommand(_setSql);
        var p = command.Parameters;
        p.Add(Text(NewId()));
        p.Add(Text(ToText(policy.SubjectType)));
        p.Add(Text(policy.SubjectId));
        p.Add(Text(policy.ModelAlias));
        p.Add(Text(ToText(policy.Effect)));
        p.Add(Timestamp(policy.CreatedAt));
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task<bool> RemoveAsync(PolicySubjectType subjectType, string subjectId, string modelAlias, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(subjectId);
        ArgumentNullException.ThrowIfNull(modelAlias);
        ThrowIfBadGlobalId(subjectType, subjectId, nameof(subjectId));
        await using var command = _dataSource.CreateCommand(_removeSql);
        command.Parameters.Add(Text(ToText(subjectType)));
        command.Parameters.Add(Text(subjectId));
        command.Parameters.Add(Text(modelAlias));
        return await command.ExecuteNonQueryAsync(cancellationToken) == 1;
    }

    public async Task<IReadOnlyList<ModelAccessPolicy>> ListAsync(PolicySubjectType subjectType, string subjectId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(subjectId);
        ThrowIfBadGlobalId(subjectType, subjectId, nameof(subjectId));
        await using var command = _dataSource.CreateCommand(_listSql);
        command.Parameters.Add(Text(ToText(subjectType)));
        command.Parameters.Add(Text(subjectId));
        return await ReadAllAsync(command, cancellationToken);
    }

    public async Task<IReadOnlyList<ModelAccessPolicy>> ListApplicableAsync(string? planId, string orgId, string keyId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(orgId);
        ArgumentNullException.ThrowIfNull(keyId);
        await using var command = _dataSource.CreateCommand(_listApplicableSql);
        command.Parameters.Add(NullableText(planId));
        command.Parameters.Add(Text(orgId));
        command.Parameters.Add(Text(keyId));
        return await ReadAllAsync(command, cancellationToken);
    }

    private static async Task<IReadOnlyList<ModelAccessPolicy>> ReadAllAsync(NpgsqlCommand command, CancellationToken cancellationToken)
    {
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var policies = new List<ModelAccessPolicy>();
        while (await reader.ReadAsync(cancellationToken))
        {
            policies.Add(new ModelAccessPolicy
            {
                SubjectType = SubjectFromText(reader.GetString(0)),
                SubjectId = reader.GetString(1),
                ModelAlias = reader.GetString(2),
                Effect = EffectFromText(reader.GetString(3)),
                CreatedAt = reader.GetTimestamp(4),
            });
        }

        return policies;
    }

    private static string NewId() => "map_" + Guid.CreateVersion7().ToString("N", CultureInfo.InvariantCulture);

    private static void ThrowIfBadGlobalId(PolicySubjectType subjectType, string subjectId, string paramName)
    {
        if (subjectType == PolicySubjectType.Global && !string.Equals(subjectId, ModelAccessPolicy.GlobalSubjectId, StringComparison.Ordinal))
        {
            throw new ArgumentException($"A global policy's subject id must be '{ModelAccessPolicy.GlobalSubjectId}', not '{subjectId}'.", paramName);
        }
    }

    private static string ToText(PolicySubjectType subjectType) => subjectType switch
    {
        PolicySubjectType.Plan => "plan",
        PolicySubjectType.Org => "org",
        PolicySubjectType.Key => "key",
        PolicySubjectType.Global => "global",
        _ => throw new ArgumentOutOfRangeException(nameof(subjectType), subjectType, "Unknown policy subject type."),
    };

    private static PolicySubjectType SubjectFromText(string value) => value switch
    {
        "plan" => PolicySubjectType.Plan,
        "org" => PolicySubjectType.Org,
        "key" => PolicySubjectType.Key,
        "global" => PolicySubjectType.Global,
        _ => throw new InvalidOperationException($"model_access_policies.subject_type holds an unknown value '{value}'."),
    };

    private static string ToText(PolicyEffect effect) => effect switch
    {
        PolicyEffect.Allow => "allow",
        PolicyEffect.Deny => "deny",
        _ => throw new ArgumentOutOfRangeException(nameof(effect), effect, "Unknown policy effect."),
    };

    private static PolicyEffect EffectFromText(string value) => value switch
    {
        "allow" => PolicyEffect.Allow,
        "deny" => PolicyEffect.Deny,
        _ => throw new InvalidOperationException($"model_access_policies.effect holds an unknown value '{value}'."),
    };
}
