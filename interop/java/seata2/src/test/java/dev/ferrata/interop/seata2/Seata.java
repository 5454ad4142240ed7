package dev.ferrata.interop.seata2;

import dev.ferrata.interop.harness.CallRecorder;
import dev.ferrata.interop.harness.SeataClientConfig;
import dev.ferrata.interop.harness.TcServer;
import org.apache.seata.core.context.RootContext;
import org.apache.seata.core.exception.TransactionException;
import org.apache.seata.core.exception.TransactionExceptionCode;
import org.apache.seata.core.model.BranchStatus;
import org.apache.seata.core.model.BranchType;
import org.apache.seata.core.model.GlobalStatus;
import org.apache.seata.core.model.Resource;
import org.apache.seata.core.protocol.ResultCode;
import org.apache.seata.core.protocol.transaction.GlobalLockQueryRequest;
import org.apache.seata.core.protocol.transaction.GlobalLockQueryResponse;
import org.apache.seata.core.rpc.netty.RmNettyRemotingClient;
import org.apache.seata.rm.AbstractResourceManager;
import org.apache.seata.rm.DefaultResourceManager;
import org.apache.seata.rm.RMClient;
import org.apache.seata.rm.tcc.TCCResource;
import org.apache.seata.rm.tcc.api.BusinessActionContext;
import org.apache.seata.tm.DefaultTransactionManager;
import org.apache.seata.tm.TMClient;

import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Seata 2.x (org.apache.seata) client plumbing shared by the test classes of this module:
 * client initialisation without Spring, a recording TCC action, a recording AT resource
 * manager. Every test class runs in its own JVM (surefire reuseForks=false), so the
 * JVM-wide Seata singletons are initialised once per class, against that class's TC.
 */
final class Seata {

    static final String APP_ID = "ferrata-interop-seata2";
    static final String GROUP = SeataClientConfig.TX_SERVICE_GROUP;
    /** AT resource id: what DataSourceProxy would report for this JDBC URL. */
    static final String AT_RESOURCE_ID = "jdbc:mysql://127.0.0.1:3306/interop";

    private static final AtomicInteger SEQ = new AtomicInteger();

    private Seata() {
    }

    /** Points the client at the TC (system properties) and initialises the TM client. */
    static void initTm(TcServer tc) {
        SeataClientConfig.apply(tc);
        TMClient.init(APP_ID, GROUP);
    }

    /** Access key and secret key the authentication tests configure in the TC. */
    static final String ACCESS_KEY = "interop-access-key";
    static final String SECRET_KEY = "interop-secret-key";

    /** ferrata-server's [auth] table: only {@link #APP_ID} with {@link #ACCESS_KEY}. */
    static String authToml() {
        return "[auth]\nenabled = true\ntimestamp_window = \"1m\"\n"
            + "[[auth.keys]]\napplication_id = \"" + APP_ID + "\"\n"
            + "access_key = \"" + ACCESS_KEY + "\"\nsecret_key = \"" + SECRET_KEY + "\"\n";
    }

    /** Like {@link #initTm(TcServer)}, signing the TM registration with these keys. */
    static void initTm(TcServer tc, String accessKey, String secretKey) {
        SeataClientConfig.apply(tc);
        TMClient.init(APP_ID, GROUP, accessKey, secretKey);
    }

    /**
     * Initialises the RM client. Resources registered before this call are sent in the first
     * RegisterRMRequest of the (synchronous) initial connection, so the TC knows them before
     * any branch is registered.
     */
    static void initRm() {
        RMClient.init(APP_ID, GROUP);
    }

    /** GlobalStatusRequest through the TM client. */
    static GlobalStatus status(String xid) throws TransactionException {
        return new DefaultTransactionManager().getStatus(xid);
    }

    /** A transaction name unique across runs and tests. */
    static String uniqueName(String what) {
        return "interop-seata2-" + what + "-" + SEQ.incrementAndGet() + "-"
            + UUID.randomUUID().toString().substring(0, 8);
    }

    static void clearContext() {
        RootContext.unbind();
        RootContext.unbindBranchType();
    }

    // ------------------------------------------------------------------ TCC

    /** A TCC participant whose phase-two methods only record their invocation. */
    public static final class RecordingTccAction {
        final CallRecorder recorder;

        RecordingTccAction(CallRecorder recorder) {
            this.recorder = recorder;
        }

        public boolean prepare(BusinessActionContext ctx) {
            return true;
        }

        public boolean commit(BusinessActionContext ctx) {
            recorder.record(CallRecorder.COMMIT, ctx.getXid(), ctx.getBranchId(), ctx.getActionName(),
                ctx.getActionContext());
            return true;
        }

        public boolean rollback(BusinessActionContext ctx) {
            recorder.record(CallRecorder.ROLLBACK, ctx.getXid(), ctx.getBranchId(), ctx.getActionName(),
                ctx.getActionContext());
            return true;
        }
    }

    /**
     * Registers {@code action} as TCC resource {@code actionName}, the way the TCC annotation
     * scanner would (target bean, prepare/commit/rollback methods, phase-two argument classes).
     */
    static void registerTccResource(String actionName, RecordingTccAction action) throws NoSuchMethodException {
        TCCResource resource = new TCCResource();
        resource.setActionName(actionName);
        resource.setAppName(APP_ID);
        resource.setTargetBean(action);
        resource.setPrepareMethod(RecordingTccAction.class.getMethod("prepare", BusinessActionContext.class));
        resource.setCommitMethodName("commit");
        resource.setCommitMethod(RecordingTccAction.class.getMethod("commit", BusinessActionContext.class));
        resource.setCommitArgsClasses(new Class<?>[] {BusinessActionContext.class});
        resource.setPhaseTwoCommitKeys(new String[] {null});
        resource.setRollbackMethodName("rollback");
        resource.setRollbackMethod(RecordingTccAction.class.getMethod("rollback", BusinessActionContext.class));
        resource.setRollbackArgsClasses(new Class<?>[] {BusinessActionContext.class});
        resource.setPhaseTwoRollbackKeys(new String[] {null});
        DefaultResourceManager.get().registerResource(resource);
    }

    /**
     * The branch applicationData the TCC interceptor sends: {"actionContext":{...}} with the
     * framework keys plus a test value ({@code probe}) that phase two must see again.
     */
    static String tccApplicationData(String actionName, String probe) {
        return "{\"actionContext\":{"
            + "\"action-start-time\":" + System.currentTimeMillis() + ","
            + "\"sys::prepare\":\"prepare\","
            + "\"sys::commit\":\"commit\","
            + "\"sys::rollback\":\"rollback\","
            + "\"actionName\":\"" + actionName + "\","
            + "\"host-name\":\"127.0.0.1\","
            + "\"useTCCFence\":false,"
            + "\"probe\":\"" + probe + "\""
            + "}}";
    }

    /** BranchRegisterRequest for a TCC branch of the transaction {@code xid}. */
    static long registerTccBranch(String actionName, String xid, String probe) throws TransactionException {
        Long branchId = DefaultResourceManager.get().branchRegister(BranchType.TCC, actionName, null, xid,
            tccApplicationData(actionName, probe), null);
        if (branchId == null) {
            throw new AssertionError("branchRegister returned null branch id for xid " + xid);
        }
        return branchId;
    }

    // ------------------------------------------------------------------- AT

    /** A bare AT resource (no datasource): only its id matters to the TC. */
    record SimpleResource(String resourceId, BranchType branchType) implements Resource {
        @Override
        public String getResourceGroupId() {
            return null;
        }

        @Override
        public String getResourceId() {
            return resourceId;
        }

        @Override
        public BranchType getBranchType() {
            return branchType;
        }
    }

    /**
     * Stands in for the AT DataSourceManager: branch register / lock query go to the TC through
     * the real RM client (inherited), phase-two requests from the TC are recorded and answered
     * with success.
     */
    static final class RecordingAtResourceManager extends AbstractResourceManager {
        final CallRecorder recorder;
        private final Map<String, Resource> resources = new ConcurrentHashMap<>();

        RecordingAtResourceManager(CallRecorder recorder) {
            this.recorder = recorder;
        }

        @Override
        public void registerResource(Resource resource) {
            resources.put(resource.getResourceId(), resource);
            super.registerResource(resource);
        }

        @Override
        public Map<String, Resource> getManagedResources() {
            return resources;
        }

        @Override
        public BranchType getBranchType() {
            return BranchType.AT;
        }

        /**
         * GlobalLockQueryRequest over the RM connection (AbstractResourceManager answers false
         * locally; the AT datasource manager asks the TC, as done here).
         */
        @Override
        public boolean lockQuery(BranchType branchType, String resourceId, String xid, String lockKeys)
            throws TransactionException {
            GlobalLockQueryRequest request = new GlobalLockQueryRequest();
            request.setBranchType(branchType);
            request.setXid(xid);
            request.setResourceId(resourceId);
            request.setLockKey(lockKeys);
            Object response;
            try {
                response = RmNettyRemotingClient.getInstance().sendSyncRequest(request);
            } catch (TimeoutException e) {
                throw new TransactionException(TransactionExceptionCode.IO, "GlobalLockQuery timed out", e);
            }
            if (!(response instanceof GlobalLockQueryResponse)) {
                throw new AssertionError("GlobalLockQuery answered with " + response);
            }
            GlobalLockQueryResponse r = (GlobalLockQueryResponse) response;
            if (r.getResultCode() == ResultCode.Failed) {
                throw new TransactionException(r.getTransactionExceptionCode(), "GlobalLockQuery failed: " + r.getMsg());
            }
            return r.isLockable();
        }

        @Override
        public BranchStatus branchCommit(BranchType branchType, String xid, long branchId, String resourceId,
                                         String applicationData) {
            recorder.record(CallRecorder.COMMIT, xid, branchId, resourceId, Map.of("branchType", branchType.name()));
            return BranchStatus.PhaseTwo_Committed;
        }

        @Override
        public BranchStatus branchRollback(BranchType branchType, String xid, long branchId, String resourceId,
                                           String applicationData) {
            recorder.record(CallRecorder.ROLLBACK, xid, branchId, resourceId, Map.of("branchType", branchType.name()));
            return BranchStatus.PhaseTwo_Rollbacked;
        }
    }

    /** Replaces the AT resource manager and registers the AT resource id (call before initRm). */
    static void installAtResourceManager(RecordingAtResourceManager rm, String resourceId) {
        // get() first: creating the singleton loads the SPI resource managers, which would
        // overwrite a replacement installed earlier
        DefaultResourceManager.get();
        DefaultResourceManager.mockResourceManager(BranchType.AT, rm);
        DefaultResourceManager.get().registerResource(new SimpleResource(resourceId, BranchType.AT));
    }
}
