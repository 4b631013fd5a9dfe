"""turn keys include the Temporal execution

Rows written before this revision belong to one execution each; they get "".

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 07:05:08.185331
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('artifacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('execution_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False, server_default=''))
        batch_op.drop_constraint(batch_op.f('uq_artifact_write'), type_='unique')
        batch_op.create_unique_constraint('uq_artifact_write', ['run_id', 'execution_id', 'task_id', 'attempt', 'turn', 'path'])

    with op.batch_alter_table('ledger', schema=None) as batch_op:
        batch_op.add_column(sa.Column('execution_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False, server_default=''))
        batch_op.drop_constraint(batch_op.f('uq_ledger_turn'), type_='unique')
        batch_op.create_unique_constraint('uq_ledger_turn', ['workflow_id', 'execution_id', 'task_id', 'attempt', 'turn'])

    with op.batch_alter_table('tool_results', schema=None) as batch_op:
        batch_op.add_column(sa.Column('execution_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False, server_default=''))
        batch_op.drop_constraint(batch_op.f('uq_tool_results_turn'), type_='unique')
        batch_op.create_unique_constraint('uq_tool_results_turn', ['workflow_id', 'execution_id', 'task_id', 'attempt', 'turn'])



def downgrade() -> None:
    with op.batch_alter_table('tool_results', schema=None) as batch_op:
        batch_op.drop_constraint('uq_tool_results_turn', type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_tool_results_turn'), ['workflow_id', 'task_id', 'attempt', 'turn'])
        batch_op.drop_column('execution_id')

    with op.batch_alter_table('ledger', schema=None) as batch_op:
        batch_op.drop_constraint('uq_ledger_turn', type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_ledger_turn'), ['workflow_id', 'task_id', 'attempt', 'turn'])
        batch_op.drop_column('execution_id')

    with op.batch_alter_table('artifacts', schema=None) as batch_op:
        batch_op.drop_constraint('uq_artifact_write', type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_artifact_write'), ['run_id', 'task_id', 'attempt', 'turn', 'path'])
        batch_op.drop_column('execution_id')

