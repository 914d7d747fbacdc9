namespace Cortensor.Portal.Accounts.Organizations;

public enum UserStatus
{
    Active,
    Disabled,
}

/// <summary>A Portal-side user, mapped from an auth provider identity (for example a Supabase user id).</summary>
public sealed record PortalUser
{
    public required string Id { get; init; }

    /// <summary>For example <c>supabase</c> or <c>local</c>.</summary>
    public required string AuthProvider { get; init; }

    /// <summary>The provider's subject (<c>sub</c>).</summary>
    public required string AuthSubject { get; init; }

    public string? Email { get; init; }

    public string? DisplayName { get; init; }

    public UserStatus Status { get; init; } = UserStatus.Active;

    public required DateTimeOffset CreatedAt { get; init; }
}

public enum OrganizationStatus
{
    Active,
    Suspended,
}

public sealed record Organization
{
    public required string Id { get; init; }

    public required string Name { get; init; }

    public string? OwnerUserId { get; init; }

    public OrganizationStatus Status { get; init; } = OrganizationStatus.Active;

    public required DateTimeOffset CreatedAt { get; init; }
}

public enum OrganizationRole
{
    Owner,
    Admin,
    Member,
}

public sealed record OrganizationMember(string OrgId, string UserId, OrganizationRole Role, DateTimeOffset CreatedAt);

/// <summary>Users, organizations and memberships. Adding an id that exists throws <see cref="InvalidOperationException"/>.</summary>
public interface IAccountStore
{
    Task AddUserAsync(PortalUser user, CancellationToken cancellationToken = default);

    Task<PortalUser?> FindUserAsync(string userId, CancellationToken cancellationToken = default);

    Task<PortalUser?> FindUserByIdentityAsync(string authProvider, string authSubject, CancellationToken cancellationToken = default);

    Task AddOrganizationAsync(Organization organization, CancellationToken cancellationToken = default);

    Task<Organization?> FindOrganizationAsync(string orgId, CancellationToken cancellationToken = default);

    Task<bool> SetOrganizationStatusAsync(string orgId, OrganizationStatus status, CancellationToken cancellationToken = default);

    /// <summary>Adds the member, or changes the role of an existing one. Org and user must exist.</summary>
    Task SetMemberAsync(OrganizationMember member, CancellationToken cancellationToken = default);

    Task<bool> RemoveMemberAsync(string orgId, string userId, CancellationToken cancellationToken = default);

    /// <summary>Members of an org, ordered by created time then user id.</summary>
    Task<IReadOnlyList<OrganizationMember>> ListMembersAsync(string orgId, CancellationToken cancellationToken = default);

    /// <summary>Orgs the user belongs to, ordered by name.</summary>
    Task<IReadOnlyList<Organization>> ListOrganizationsForUserAsync(string userId, CancellationToken cancellationToken = default);
}
