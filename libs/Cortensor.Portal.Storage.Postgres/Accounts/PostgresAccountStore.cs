using Cortensor.Portal.Accounts.Organizations;
using Cortensor.Portal.Storage.Postgres.Configuration;
using Cortensor.Portal.Storage.Postgres.Internal;
using Microsoft.Extensions.Options;
using Npgsql;
using static Cortensor.Portal.Storage.Postgres.Accounts.PostgresParameters;

namespace Cortensor.Portal.Storage.Postgres.Accounts;

/// <summary>
/// <see cref="IAccountStore"/> over <c>users</c>, <c>organizations</c> and <c>organization_members</c>. A
/// duplicate id (or auth identity) and a membership of an unknown org or user throw
/// <see cref="InvalidOperationException"/> (SQLSTATE 23505 / 23503).
/// </summary>
/// <remarks>
/// Each call is one statement on a pooled connection: no prepared statements, no session state. Empty
/// <c>email</c>/<c>display_name</c> columns (<c>NOT NULL DEFAULT ''</c>) read back as <see langword="null"/>.
/// Text is ordered bytewise (<c>COLLATE "C"</c>), the same order as SQLite.
/// </remarks>
public sealed class PostgresAccountStore : IAccountStore
{
    private const string UserColumns = "id, auth_provider, auth_subject, email, display_name, status, created_at";
    private const string OrgColumns = "id, name, owner_user_id, status, created_at";

    private readonly NpgsqlDataSource _dataSource;
    private readonly string _insertUserSql;
    private readonly string _findUserSql;
    private readonly string _findUserByIdentitySql;
    private readonly string _insertOrgSql;
    private readonly string _findOrgSql;
    private readonly string _setOrgStatusSql;
    private readonly string _setMemberSql;
    private readonly string _removeMemberSql;
    private readonly string _listMembersSql;
    private readonly string _listOrgsForUserSql;

    public PostgresAccountStore(NpgsqlDataSource dataSource, IOptions<PostgresStorageOptions> options)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(options);
        _dataSource = dataSource;
        var schema = new StoreSchema(options.Value.Schema);
        var users = schema.Table("users");
        var orgs = schema.Table("organizations");
        var members = schema.Table("organization_members");

        _insertUserSql = $"INSERT INTO {users} ({UserColumns}) VALUES ($1, $2, $3, $4, $5, $6, $7)";
        _findUserSql = $"SELECT {UserColumns} FROM {users} WHERE id = $1";
        _findUserByIdentitySql = $"SELECT {UserColumns} FROM {users} WHERE auth_provider = $1 AND auth_subject = $2";
        _insertOrgSql = $"INSERT INTO {orgs} ({OrgColumns}) VALUES ($1, $2, $3, $4, $5)";
        _findOrgSql = $"SELECT {OrgColumns} FROM {orgs} WHERE id = $1";
        _setOrgStatusSql = $"UPDATE {orgs} SET status = $2 WHERE id = $1";
        _setMemberSql =
            $"INSERT INTO {members} (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) " +
            "ON CONFLICT (org_id, user_id) DO UPDATE SET role = EXCLUDED.role";
        _removeMemberSql = $"DELETE FROM {members} WHERE org_id = $1 AND user_id = $2";
        _listMembersSql =
            $"SELECT org_id, user_id, role, created_at FROM {members} WHERE org_id = $1 ORDER BY created_at, user_id COLLATE \"C\"";
        _listOrgsForUserSql =
            $"SELECT o.id, o.name, o.owner_user_id, o.status, o.created_at FROM {orgs} o " +
            $"JOIN {members} m ON m.org_id = o.id WHERE m.user_id = $1 ORDER BY o.name COLLATE \"C\", o.id COLLATE \"C\"";
    }

    /// <exception cref="InvalidOperationException">A user with this id or this (provider, subject) exists.</exception>
    public async Task AddUserAsync(PortalUser user, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(user);
        ArgumentException.ThrowIfNullOrEmpty(user.Id, nameof(user));
        ArgumentException.ThrowIfNullOrEmpty(user.AuthProvider, nameof(user));
        ArgumentException.ThrowIfNullOrEmpty(user.AuthSubject, nameof(user));

        await using var command = _dataSource.CreateCommand(_insertUserSql);
        var p = command.Parameters;
        p.Add(Text(user.Id));
        p.Add(Text(user.AuthProvider));
        p.Add(Text(user.AuthSubject));
        p.Add(Text(user.Email ?? ""));
        p.Add(Text(user.DisplayName ?? ""));
        p.Add(Text(ToText(user.Status)));
        p.Add(Timestamp(user.CreatedAt));
        try
        {
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrors.UniqueViolation)
        {
            throw new InvalidOperationException(
                $"A user with id '{user.Id}' or identity '{user.AuthProvider}:{user.AuthSubject}' is already stored.", ex);
        }
    }

    public async Task<PortalUser?> FindUserAsync(string userId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(userId);
        await using var command = _dataSource.CreateCommand(_findUserSql);
        command.Parameters.Add(Text(userId));
        return await ReadUserAsync(command, cancellationToken);
    }

    public async Task<PortalUser?> FindUserByIdentityAsync(string authProvider, string authSubject, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(authProvider);
        ArgumentNullException.ThrowIfNull(authSubject);
        await using var command = _dataSource.CreateCommand(_findUserByIdentitySql);
        command.Parameters.Add(Text(authProvider));
        command.Parameters.Add(Text(authSubject));
        return await ReadUserAsync(command, cancellationToken);
    }

    /// <exception cref="InvalidOperationException">An organization with this id exists.</exception>
    public async Task AddOrganizationAsync(Organization organization, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(organization);
        ArgumentException.ThrowIfNullOrEmpty(organization.Id, nameof(organization));
        ArgumentNullException.ThrowIfNull(organization.Name, nameof(organization));

        await using var command = _dataSource.CreateCommand(_insertOrgSql);
        var p = command.Parameters;
        p.Add(Text(organization.Id));
        p.Add(Text(organization.Name));
        p.Add(NullableText(organization.OwnerUserId));
        p.Add(Text(ToText(organization.Status)));
        p.Add(Timestamp(organization.CreatedAt));
        try
        {
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrors.UniqueViolation)
        {
            throw new InvalidOperationException($"An organization with id '{organization.Id}' is already stored.", ex);
        }
    }

    public async Task<Organization?> FindOrganizationAsync(string orgId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(orgId);
        await using var command = _dataSource.CreateCommand(_findOrgSql);
        command.Parameters.Add(Text(orgId));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? ReadOrganization(reader) : null;
    }

    public async Task<bool> SetOrganizationStatusAsync(string orgId, OrganizationStatus status, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(orgId);
        var text = ToText(status);
        await using var command = _dataSource.CreateCommand(_setOrgStatusSql);
        command.Parameters.Add(Text(orgId));
        command.Parameters.Add(Text(text));
        return await command.ExecuteNonQueryAsync(cancellationToken) == 1;
    }

    /// <exception cref="InvalidOperationException">The org or the user does not exist.</exception>
    public async Task SetMemberAsync(OrganizationMember member, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(member);
        ArgumentNullException.ThrowIfNull(member.OrgId, nameof(member));
        ArgumentNullException.ThrowIfNull(member.UserId, nameof(member));
        var role = ToText(member.Role);

        await using var command = _dataSource.CreateCommand(_setMemberSql);
        var p = command.Parameters;
        p.Add(Text(member.OrgId));
        p.Add(Text(member.UserId));
        p.Add(Text(role));
        p.Add(Timestamp(member.CreatedAt));
        try
        {
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
        catch (PostgresException ex) when (ex.SqlState == ForeignKeyViolation)
        {
            throw new InvalidOperationException(
                $"Cannot add user '{member.UserId}' to organization '{member.OrgId}': the organization or the user does not exist.", ex);
        }
    }

    public async Task<bool> RemoveMemberAsync(string orgId, string userId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(orgId);
        ArgumentNullException.ThrowIfNull(userId);
        await using var command = _dataSource.CreateCommand(_removeMemberSql);
        command.Parameters.Add(Text(orgId));
        command.Parameters.Add(Text(userId));
        return await command.ExecuteNonQueryAsync(cancellationToken) == 1;
    }

    public async Task<IReadOnlyList<OrganizationMember>> ListMembersAsync(string orgId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(orgId);
        await using var command = _dataSource.CreateCommand(_listMembersSql);
        command.Parameters.Add(Text(orgId));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var members = new List<OrganizationMember>();
        while (await reader.ReadAsync(cancellationToken))
        {
            members.Add(new OrganizationMember(reader.GetString(0), reader.GetString(1), RoleFromText(reader.GetString(2)), reader.GetTimestamp(3)));
        }

        return members;
    }

    public async Task<IReadOnlyList<Organization>> ListOrganizationsForUserAsync(string userId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(userId);
        await using var command = _dataSource.CreateCommand(_listOrgsForUserSql);
        command.Parameters.Add(Text(userId));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var organizations = new List<Organization>();
        while (await reader.ReadAsync(cancellationToken))
        {
            organizations.Add(ReadOrganization(reader));
        }

        return organizations;
    }

    private static async Task<PortalUser?> ReadUserAsync(NpgsqlCommand command, CancellationToken cancellationToken)
    {
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }

        return new PortalUser
        {
            Id = reader.GetString(0),
            AuthProvider = reader.GetString(1),
            AuthSubject = reader.GetString(2),
            Email = EmptyToNull(reader.GetString(3)),
            DisplayName = EmptyToNull(reader.GetString(4)),
            Status = UserStatusFromText(reader.GetString(5)),
            CreatedAt = reader.GetTimestamp(6),
        };
    }

    private static Organization ReadOrganization(NpgsqlDataReader reader) => new()
    {
        Id = reader.GetString(0),
        Name = reader.GetString(1),
        OwnerUserId = reader.GetNullableString(2),
        Status = OrgStatusFromText(reader.GetString(3)),
        CreatedAt = reader.GetTimestamp(4),
    };

    private static string? EmptyToNull(string value) => value.Length == 0 ? null : value;

    private static string ToText(UserStatus status) => status switch
    {
        UserStatus.Active => "active",
        UserStatus.Disabled => "disabled",
        _ => throw new ArgumentOutOfRangeException(nameof(status), status, "Unknown user status."),
    };

    private static UserStatus UserStatusFromText(string value) => value switch
    {
        "active" => UserStatus.Active,
        "disabled" => UserStatus.Disabled,
        _ => throw new InvalidOperationException($"users.status holds an unknown value '{value}'."),
    };

    private static string ToText(OrganizationStatus status) => status switch
    {
        OrganizationStatus.Active => "active",
        OrganizationStatus.Suspended => "suspended",
        _ => throw new ArgumentOutOfRangeException(nameof(status), status, "Unknown organization status."),
    };

    private static OrganizationStatus OrgStatusFromText(string value) => value switch
    {
        "active" => OrganizationStatus.Active,
        "suspended" => OrganizationStatus.Suspended,
        _ => throw new InvalidOperationException($"organizations.status holds an unknown value '{value}'."),
    };

    private static string ToText(OrganizationRole role) => role switch
    {
        OrganizationRole.Owner => "owner",
        OrganizationRole.Admin => "admin",
        OrganizationRole.Member => "member",
        _ => throw new ArgumentOutOfRangeException(nameof(role), role, "Unknown organization role."),
    };

    private static OrganizationRole RoleFromText(string value) => value switch
    {
        "owner" => OrganizationRole.Owner,
        "admin" => OrganizationRole.Admin,
        "member" => OrganizationRole.Member,
        _ => throw new InvalidOperationException($"organization_members.role holds an unknown value '{value}'."),
    };
}
